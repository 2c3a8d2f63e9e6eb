"""loadgen: load testing and latency profiling for LLM inference endpoints."""

__version__ = "0.1.0"
