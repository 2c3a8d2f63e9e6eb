"""Import layer: other tools' results (AIPerf, GenAI-Perf, ``vllm bench serve``, GuideLLM) and
published tables, turned into loadgen sweep directories that ``plan`` and ``report`` read like
native ones, marked with their source, the source's metric definitions and what they lack."""
