"""Protocols layer: Amazon SageMaker real-time endpoints (``InvokeEndpoint`` and
``InvokeEndpointWithResponseStream``) carrying a model schema: LMI native, TGI, or OpenAI chat
(LMI's messages API). The body is the schema's; streamed responses arrive in event-stream frames
(``EventStreamDecoder``). Signing is the transport's job (SigV4), not the codec's.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from loadgen.prompts import Prompt
from loadgen.protocols.base import Codec, Decoder, GenerationParams, HttpRequest
from loadgen.protocols.eventstream import EventStreamDecoder


@dataclass(frozen=True, slots=True)
class SageMakerTarget:
    endpoint_name: str
    inference_component: str | None = None
    custom_attributes: str | None = None
    target_variant: str | None = None


class SageMakerCodec:
    def __init__(self, schema: Codec, target: SageMakerTarget) -> None:
        self.schema = schema
        self.target = target
        self.name = f"sagemaker+{schema.name}"

    def build_request(self, prompt: Prompt, params: GenerationParams) -> HttpRequest:
        inner = self.schema.build_request(prompt, params)
        stream = params.config.stream
        action = "invocations-response-stream" if stream else "invocations"
        headers = [("Content-Type", "application/json")]
        accept = "application/jsonlines" if self.schema.name == "lmi" and stream else "application/json"
        headers.append(("X-Amzn-SageMaker-Accept" if stream else "Accept", accept))
        target = self.target
        for header, value in (
            ("X-Amzn-SageMaker-Inference-Component", target.inference_component),
            ("X-Amzn-SageMaker-Custom-Attributes", target.custom_attributes),
            ("X-Amzn-SageMaker-Target-Variant", target.target_variant),
        ):
            if value:
                headers.append((header, value))
        path = f"/endpoints/{quote(target.endpoint_name, safe='')}/{action}"
        return HttpRequest("POST", path, tuple(headers), inner.body)

    def decoder(self, stream: bool, prompt: Prompt | None = None) -> Decoder:
        inner = self.schema.decoder(stream, prompt)
        return EventStreamDecoder(inner) if stream else inner

    def error_message(self, status: int, body: bytes) -> str:
        return self.schema.error_message(status, body)
