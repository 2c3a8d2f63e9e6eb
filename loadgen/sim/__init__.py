"""Simulator: a built-in LLM server whose timings follow a documented roofline model.

Beside the main data flow: it serves the OpenAI and TGI wire formats, so every layer of loadgen
can be exercised over real sockets with known behaviour.
"""
