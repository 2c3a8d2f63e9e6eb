"""Triton protocol: which tensors a model takes (``TritonOptions``), from presets or a
scenario's ``triton:`` mapping."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loadgen.errors import ProtocolError

PLACEHOLDERS = ("$prompt", "$max_tokens", "$input_ids", "$input_length", "$ignore_eos", "$temperature", "$stream")


DATATYPES = ("BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64",
             "BYTES")  # fmt: skip


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One input of a request template. ``value`` is a literal or a placeholder such as
    ``$prompt``; ``datatype``/``shape`` None: take them from the model's metadata."""

    name: str
    value: object
    datatype: str | None = None
    shape: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class TritonOptions:
    """How prompts and generation parameters map onto a Triton model's inputs and outputs."""

    preset: str = "generic"
    model_version: str | None = None
    text_input: str = "text_input"
    max_tokens: str | None = "max_tokens"
    text_output: str = "text_output"
    stream_flag: str | None = None  # sent as true on streaming requests (TensorRT-LLM, vLLM backend)
    ignore_eos: str | None = "ignore_eos"  # sent as true; "min_length" is sent max_tokens instead
    temperature: str | None = "temperature"
    sampling_parameters: str | None = None  # vLLM backend: max_tokens etc. as one JSON string input
    constants: tuple[tuple[str, object], ...] = ()  # further inputs sent with every request
    inputs: tuple[TensorSpec, ...] = ()  # a full template instead of the fields above
    output: str | None = None  # the output tensor to read (default: text_output)
    output_includes_input: bool = False  # token-id outputs that start with the prompt's ids

    @property
    def output_name(self) -> str:
        return self.output or self.text_output


PRESETS: dict[str, dict[str, object]] = {
    "generic": {},
    "trtllm": {
        "stream_flag": "stream",
        "ignore_eos": "min_length",
        "constants": {"bad_words": "", "stop_words": ""},
    },
    "vllm": {
        "max_tokens": None,
        "ignore_eos": None,
        "temperature": None,
        "stream_flag": "stream",
        "sampling_parameters": "sampling_parameters",
        "constants": {"exclude_input_in_output": True},
    },
    "fastertransformer": {
        "inputs": [
            {"name": "input_ids", "value": "$input_ids"},
            {"name": "input_lengths", "value": "$input_length"},
            {"name": "request_output_len", "value": "$max_tokens"},
        ],
        "output": "output_ids",
        "output_includes_input": True,
    },
}


_FIELD_KEYS = ("model_version", "text_input", "max_tokens", "text_output", "stream_flag", "ignore_eos", "temperature",
               "sampling_parameters", "output")  # fmt: skip


def parse_triton_options(data: dict[str, Any]) -> TritonOptions:
    """The ``triton:`` scenario mapping (or ``--triton``). Raises ValueError naming the key."""
    preset_name = str(data.get("preset", "generic"))
    if preset_name not in PRESETS:
        raise ValueError(f"preset: expected one of {', '.join(PRESETS)}, got {preset_name!r}")
    merged: dict[str, Any] = {**PRESETS[preset_name], **{k: v for k, v in data.items() if k != "preset"}}
    known = {*_FIELD_KEYS, "constants", "inputs", "output_includes_input"}
    unknown = sorted(set(merged) - known)
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r}; expected some of preset, {', '.join(sorted(known))}")
    values: dict[str, Any] = {"preset": preset_name}
    for key in _FIELD_KEYS:
        if key in merged:
            value = merged[key]
            if value is not None and not isinstance(value, (str, int)):
                raise ValueError(f"{key}: expected a name, got {value!r}")
            values[key] = None if value is None else str(value)
    constants = merged.get("constants") or {}
    if not isinstance(constants, dict):
        raise ValueError(f"constants: expected a mapping of input name to value, got {constants!r}")
    values["constants"] = tuple((str(k), v) for k, v in constants.items())
    values["inputs"] = tuple(_tensor_spec(entry, i) for i, entry in enumerate(merged.get("inputs") or []))
    values["output_includes_input"] = bool(merged.get("output_includes_input", False))
    return TritonOptions(**values)


def _tensor_spec(entry: object, index: int) -> TensorSpec:
    where = f"inputs[{index}]"
    if not isinstance(entry, dict) or "name" not in entry or "value" not in entry:
        raise ValueError(f"{where}: expected {{name, value[, datatype, shape]}}, got {entry!r}")
    value = entry["value"]
    if isinstance(value, str) and value.startswith("$") and value not in PLACEHOLDERS:
        raise ValueError(f"{where}.value: unknown placeholder {value!r}; expected one of {', '.join(PLACEHOLDERS)}")
    datatype = entry.get("datatype")
    if datatype is not None and str(datatype).upper() not in DATATYPES:
        raise ValueError(f"{where}.datatype: expected one of {', '.join(DATATYPES)}, got {datatype!r}")
    shape = entry.get("shape")
    if shape is not None and (not isinstance(shape, list) or not all(isinstance(d, int) and d >= -1 for d in shape)):
        raise ValueError(f"{where}.shape: expected a list of dimensions (-1 = the value's length), got {shape!r}")
    return TensorSpec(str(entry["name"]), value, None if datatype is None else str(datatype).upper(),
                      None if shape is None else tuple(shape))  # fmt: skip


def uses_token_ids(options: TritonOptions) -> bool:
    return any(spec.value in ("$input_ids", "$input_length") for spec in options.inputs)


def model_path(model: str | None, options: TritonOptions) -> str:
    if not model:
        raise ProtocolError("Triton needs a model name: give --model")
    path = f"/v2/models/{model}"
    return f"{path}/versions/{options.model_version}" if options.model_version else path
