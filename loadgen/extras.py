"""What an optional feature needs installed: the core serves OpenAI, TGI and LMI over HTTP and
the simulator; Triton gRPC, SageMaker, Locust, GPU sampling and tokenizers are extras. A missing
one is one line naming the extra to install, before any load."""

from __future__ import annotations

import importlib.util

from loadgen.errors import ConfigError

EXTRAS = {
    "triton": ("tritonclient", "grpc"),
    "sagemaker": ("botocore",),
    "locust": ("locust", "gevent"),
    "gpu": ("pynvml",),
    "tokenizers": ("tokenizers",),
    "parquet": ("pyarrow",),
    "otlp-grpc": ("grpc",),
}


def require(extra: str, feature: str) -> None:
    missing = [module for module in EXTRAS[extra] if importlib.util.find_spec(module) is None]
    if missing:
        raise ConfigError(f"{feature} needs loadgen's '{extra}' extra ({', '.join(missing)} is not installed): "
                          f"pip install 'loadgen[{extra}]'")  # fmt: skip
