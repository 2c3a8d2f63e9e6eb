"""Protocols layer: what each ``--api`` is and can do, in one registry.

The codecs say how to build a request and read a response; an ``ApiSpec`` says the rest that
the layers above ask about an API (which transport carries it, whether it is Triton, whether it
lists its models, batches prompts, streams tokens, is served by the built-in simulator, needs an
optional extra). Code asks ``api_spec(endpoint.api).batches``, never compares API names.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from loadgen.errors import ConfigError
from loadgen.parsing import did_you_mean


class TransportKind(enum.Enum):
    HTTP = "http"  # HTTP/1.1 on loadgen's kernel-stamped transport (loadgen.transport.http)
    GRPC = "grpc"  # gRPC streams (loadgen.transport.grpc)
    SIGV4_HTTP = "sigv4-http"  # HTTP signed with AWS SigV4 (SageMaker's runtime API)


@dataclass(frozen=True, slots=True)
class ApiSpec:
    name: str
    transport: TransportKind
    triton: bool = False  # a Triton endpoint: the model's metadata is checked, Triton's metrics read
    lists_models: bool = False  # GET /v1/models names the served model (OpenAI-compatible servers)
    batches: bool = False  # several prompts in one request (--batch-size)
    streams_tokens: bool = True  # a streamed response carries tokens as they come (triton-infer: one answer)
    simulated: bool = False  # the built-in simulator speaks it (and reports its own lag)
    extra: str | None = None  # the optional dependency group it needs (pip install 'loadgen[EXTRA]')

    @property
    def blocking_http(self) -> bool:
        """Plain HTTP that a blocking client can send (Locust mode)."""
        return self.transport is TransportKind.HTTP


API_SPECS: dict[str, ApiSpec] = {
    spec.name: spec
    for spec in (
        ApiSpec("openai-chat", TransportKind.HTTP, lists_models=True, simulated=True),
        ApiSpec("openai-completions", TransportKind.HTTP, lists_models=True, batches=True, simulated=True),
        ApiSpec("tgi", TransportKind.HTTP, simulated=True),
        ApiSpec("lmi", TransportKind.HTTP, batches=True),
        ApiSpec("triton-generate", TransportKind.HTTP, triton=True),
        ApiSpec("triton-infer", TransportKind.HTTP, triton=True, batches=True, streams_tokens=False),
        ApiSpec("triton-grpc", TransportKind.GRPC, triton=True, batches=True, extra="triton"),
        ApiSpec("sagemaker", TransportKind.SIGV4_HTTP, batches=True, extra="sagemaker"),
        ApiSpec("lmi-local", TransportKind.HTTP, batches=True),
    )
}
TRITON_APIS = tuple(name for name, spec in API_SPECS.items() if spec.triton)
BATCH_APIS = tuple(name for name, spec in API_SPECS.items() if spec.batches)


def api_spec(name: str) -> ApiSpec:
    spec = API_SPECS.get(name)
    if spec is None:
        raise ConfigError(f"--api {name}: expected one of {', '.join(API_SPECS)}{did_you_mean(name, list(API_SPECS))}")
    return spec
