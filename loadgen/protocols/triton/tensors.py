"""Triton protocol: a request's input tensors, from the options, the model's signature and the prompt."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loadgen.errors import ProtocolError
from loadgen.prompts import Prompt
from loadgen.protocols.base import (
    GenerationParams,
)
from loadgen.protocols.triton.options import TensorSpec, TritonOptions
from loadgen.protocols.triton.signature import ModelSignature


@dataclass(frozen=True, slots=True)
class Tensor:
    """An input ready to send: ``values`` flattened, ``len(values) == prod(shape)``."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    values: list[Any] = field(default_factory=list)


Encode = Callable[[str], list[int]]


class RequestValues:
    """The placeholder values of one request."""

    def __init__(self, prompt: Prompt, params: GenerationParams, stream: bool, encode: Encode | None) -> None:
        self.prompt = prompt
        self.params = params
        self.stream = stream
        self._encode = encode

    def input_ids(self) -> list[int]:
        if self._encode is None:
            raise ProtocolError("the Triton template uses $input_ids: give --tokenizer to turn prompts into token ids")
        return self._encode(self.prompt.as_text())

    def resolve(self, value: object) -> object:
        config = self.params.config
        if not (isinstance(value, str) and value.startswith("$")):
            return value
        if value == "$prompt":
            return self.prompt.as_text()
        if value == "$max_tokens":
            return self.params.max_tokens_for(self.prompt) or 256
        if value == "$input_ids":
            return self.input_ids()
        if value == "$input_length":
            return len(self.input_ids())
        if value == "$ignore_eos":
            return config.ignore_eos
        if value == "$temperature":
            return config.temperature if config.temperature is not None else 0.0
        if value == "$stream":
            return self.stream
        return value


def field_specs(options: TritonOptions, values: RequestValues) -> list[TensorSpec]:
    """The inputs the field options ask for (without datatypes); the template's when it has one."""
    if options.inputs:
        specs = list(options.inputs)
    else:
        config = values.params.config
        specs = [TensorSpec(options.text_input, "$prompt")]
        if options.max_tokens:
            specs.append(TensorSpec(options.max_tokens, "$max_tokens"))
        if options.stream_flag:
            specs.append(TensorSpec(options.stream_flag, "$stream"))
        if config.ignore_eos and options.ignore_eos:
            specs.append(TensorSpec(options.ignore_eos, "$max_tokens" if options.ignore_eos == "min_length" else True))
        if config.temperature is not None and options.temperature:
            specs.append(TensorSpec(options.temperature, "$temperature"))
        if options.sampling_parameters:
            sampling: dict[str, object] = {"max_tokens": values.resolve("$max_tokens")}
            if config.ignore_eos:
                sampling["ignore_eos"] = True
            if config.temperature is not None:
                sampling["temperature"] = config.temperature
            specs.append(TensorSpec(options.sampling_parameters, json.dumps(sampling)))
    named = {spec.name for spec in specs}
    specs += [TensorSpec(name, value) for name, value in options.constants if name not in named]
    return specs


def build_tensors(options: TritonOptions, signature: ModelSignature | None, values: RequestValues,
                  extra: tuple[tuple[str, object], ...] = ()) -> list[Tensor]:  # fmt: skip
    """Input tensors with datatypes and shapes from the template, else from the model's metadata.

    A batch of prompts (``--batch-size``) fills the batch dimension of a model with
    ``max_batch_size > 0``: one row per prompt, the other inputs repeated on every row."""
    specs = field_specs(options, values) + [TensorSpec(name, value) for name, value in extra]
    rows = len(values.prompt.batch) or 1
    batched_model = signature is not None and signature.max_batch_size > 0
    if rows > 1 and not batched_model:
        model = signature.name if signature is not None else "the model"
        raise ProtocolError(f"{model} has max_batch_size 0: it takes one prompt per request (drop --batch-size)")
    tensors = []
    for spec in specs:
        value = values.resolve(spec.value)
        flat: list[Any] = list(value) if isinstance(value, (list, tuple)) else [value]
        if rows > 1:
            if spec.value == "$prompt":
                flat = values.prompt.texts
            elif len(flat) == 1:
                flat = flat * rows
            else:
                raise ProtocolError(f"input {spec.name!r} has {len(flat)} values per prompt: it cannot be batched")
        info = signature.inputs.get(spec.name) if signature is not None else None
        datatype = spec.datatype or (info.datatype if info else _guess_datatype(flat))
        if spec.shape is not None:
            shape = spec.shape
        elif info is not None:
            shape = info.shape
        else:
            shape = (len(flat),)
        shape = _fill_shape(shape, len(flat), rows if batched_model and spec.shape is None else None)
        if math.prod(shape) != len(flat):
            raise ProtocolError(f"input {spec.name!r}: {len(flat)} value(s) do not fill shape {list(shape)}")
        tensors.append(Tensor(spec.name, datatype, shape, [_coerce(v, datatype, spec.name) for v in flat]))
    return tensors


def _fill_shape(shape: tuple[int, ...], count: int, batch_rows: int | None) -> tuple[int, ...]:
    dims = list(shape)
    if batch_rows is not None and dims and dims[0] == -1:
        dims[0] = batch_rows
    known = math.prod(d for d in dims if d != -1)
    if -1 in dims:
        fill = count // known if known else count
        dims = [fill if d == -1 else d for d in dims]
        while -1 in dims:
            dims[dims.index(-1)] = 1
    return tuple(dims)


def _guess_datatype(values: list[object]) -> str:
    first = values[0] if values else ""
    if isinstance(first, bool):
        return "BOOL"
    if isinstance(first, int):
        return "INT32"
    if isinstance(first, float):
        return "FP32"
    return "BYTES"


def _coerce(value: Any, datatype: str, name: str) -> object:
    try:
        if datatype == "BYTES":
            return value if isinstance(value, (str, bytes)) else json.dumps(value)
        if datatype == "BOOL":
            return bool(value)
        if datatype.startswith(("INT", "UINT")):
            return int(value)
        return float(value)
    except (TypeError, ValueError):
        raise ProtocolError(f"input {name!r}: {value!r} is not a {datatype} value") from None
