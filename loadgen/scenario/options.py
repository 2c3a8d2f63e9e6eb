"""Top layer (with the CLI): the options of ``run`` and ``sweep``, shared by flags and scenario
files. A scenario YAML holds any of these keys (dashes or underscores); flags override it. Each
value goes through the same converter either way, so a bad value gets the same one-line error
naming where it came from (``--flag`` or ``file.yaml: key``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from loadgen.config import Arrival, SloTarget, Stage
from loadgen.errors import ConfigError
from loadgen.metrics.thresholds import parse_threshold
from loadgen.parsing import (
    did_you_mean,
    parse_duration_s,
    parse_header,
    parse_levels,
    parse_positive_duration_s,
    parse_slo,
    public_url,
)
from loadgen.protocols import APIS, SCHEMAS
from loadgen.protocols.triton import PRESETS, parse_triton_options

Converter = Callable[[Any], object]
URL_OPTIONS = ("endpoint", "endpoint_url", "telemetry_url")


def _int(minimum: int) -> Converter:
    def convert(value: object) -> int:
        if isinstance(value, bool):
            raise ValueError(f"expected a whole number, got {value!r}")
        try:
            number = int(str(value))
        except ValueError:
            raise ValueError(f"expected a whole number, got {value!r}") from None
        if number < minimum:
            raise ValueError(f"expected a whole number >= {minimum}, got {value!r}")
        return number

    return convert


def _float(value: object) -> float:
    try:
        return float(str(value))
    except ValueError:
        raise ValueError(f"expected a number, got {value!r}") from None


def _fraction(value: object) -> float:
    """'5%' or 0.05: a share from 0 to 1."""
    text = str(value).strip()
    try:
        number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ValueError(f"expected a share like 5% or 0.05, got {value!r}") from None
    if not 0 <= number <= 1:
        raise ValueError(f"expected a share from 0% to 100%, got {value!r}")
    return number


def _positive_float(value: object) -> float:
    number = _float(value)
    if number <= 0:
        raise ValueError(f"expected a positive number, got {value!r}")
    return number


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _choice(*choices: str) -> Converter:
    def convert(value: object) -> str:
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}{did_you_mean(str(value), choices)}")
        return str(value)

    return convert


def _host_port(value: object) -> tuple[str, int]:
    text = str(value).strip()
    host, colon, number = text.rpartition(":")
    if not colon or not host or not number.isdigit() or not 0 <= int(number) <= 65535:
        raise ValueError(f"{text!r}: expected HOST:PORT, e.g. 127.0.0.1:4318 (port 0: any free port)")
    return host.strip("[]"), int(number)


def _str(value: object) -> str:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ValueError(f"expected a string, got {value!r}")
    return str(value)


def _warmup(value: object) -> tuple[int, float]:
    """'20' (requests) or '10s' (seconds) → (requests, seconds)."""
    text = str(value).strip()
    if text.isdigit():
        return int(text), 0.0
    return 0, parse_duration_s(text)


def _extra_body(value: object) -> dict[str, object]:
    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(str(value))
    except ValueError:
        raise ValueError(f"expected a JSON object, got {value!r}") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"expected a JSON object, got {value!r}")
    return parsed


def _triton(value: object) -> dict[str, object]:
    """A mapping (scenario) or ``preset=trtllm,text_input=prompt`` / JSON (flag); checked, returned as given."""
    if isinstance(value, dict):
        mapping = {str(k): v for k, v in value.items()}
    elif str(value).lstrip().startswith("{"):
        mapping = _extra_body(value)
    else:
        mapping = {}
        for part in (p.strip() for p in str(value).split(",") if p.strip()):
            key, sep, item = part.partition("=")
            if not sep:
                raise ValueError(f"expected key=value pairs like preset=trtllm,text_input=prompt, got {part!r}")
            mapping[key.strip()] = item.strip()
    parse_triton_options(mapping)
    return mapping


def _variants(value: object) -> list[object]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError(f"expected a JSON list of {{name, endpoint, extra_body}}, got {value!r}") from None
    if not isinstance(value, list) or not all(isinstance(entry, dict) and "name" in entry for entry in value):
        raise ValueError("expected a list of {name, endpoint, extra_body} (the first is the baseline)")
    return value


TELEMETRY_SOURCES = ("gpu", "neuron", "host", "server")


def _telemetry(value: object) -> tuple[str, ...]:
    items = value if isinstance(value, list) else str(value).split(",")
    names = tuple(str(item).strip() for item in items if str(item).strip())
    for name in names:
        if name not in TELEMETRY_SOURCES:
            raise ValueError(f"unknown telemetry source {name!r}; expected some of {', '.join(TELEMETRY_SOURCES)}")
    return names


def _stages(value: object) -> tuple[str, tuple[Stage, ...]]:
    """YAML ``[{duration: 30s, concurrency: 16}, …]`` (or ``rate:``), or ``30s:c=16,1m:c=64`` / ``30s:r=5``."""
    if isinstance(value, str):
        entries: list[dict[str, object]] = []
        for part in (p.strip() for p in value.split(",") if p.strip()):
            duration, _, target = part.partition(":")
            kind, _, number = target.partition("=")
            if kind not in ("c", "r") or not number:
                raise ValueError(f"expected stages like 30s:c=16,1m:c=64 (users) or 30s:r=5 (req/s), got {part!r}")
            entries.append({"duration": duration, "concurrency" if kind == "c" else "rate": number})
    elif isinstance(value, list) and all(isinstance(entry, dict) for entry in value):
        entries = value
    else:
        raise ValueError("expected a list of {duration, concurrency | rate} stages")
    kinds = {("concurrency" in entry, "rate" in entry) for entry in entries}
    if not entries or len(kinds) != 1 or kinds.pop() not in ((True, False), (False, True)):
        raise ValueError("every stage needs a duration and either 'concurrency' or 'rate', the same in all")
    kind = "concurrency" if "concurrency" in entries[0] else "rate"
    stages = []
    for entry in entries:
        target_value = _float(entry[kind])
        if target_value < 0:
            raise ValueError(f"stage targets must be >= 0, got {entry[kind]!r}")
        stages.append(Stage(parse_duration_s(str(entry.get("duration", ""))), target_value))
    return kind, tuple(stages)


def _thresholds(value: object) -> tuple[object, ...]:
    items = value if isinstance(value, list) else [value]
    parts = [part for item in items for part in str(item).split(",") if part.strip()]
    return tuple(parse_threshold(part) for part in parts)


def _names(value: object) -> tuple[str, ...]:
    items = value if isinstance(value, list) else str(value).split(",")
    return tuple(str(item).strip() for item in items if str(item).strip())


def _headers(value: object) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [(str(name), str(item)) for name, item in value.items()]
    items = value if isinstance(value, list) else [value]
    return [parse_header(str(item)) for item in items]


@dataclass(frozen=True, slots=True)
class Option:
    name: str  # dest and scenario key
    convert: Converter
    default: object
    help: str
    metavar: str | None = None
    flag_kind: str = "value"  # "value", "flag" (store_true), "append"


OPTIONS: tuple[Option, ...] = (
    Option("endpoint", _str, None, "base URL of the server (default: start the built-in simulator)", "URL"),
    Option("api", _choice(*APIS), "openai-chat", f"wire protocol: {', '.join(APIS)}", "API"),
    Option("schema", _choice(*SCHEMAS), None, "body format for sagemaker and lmi-local (default lmi)", "SCHEMA"),
    Option("endpoint_name", _str, None, "SageMaker endpoint name (--api sagemaker)", "NAME"),
    Option("region", _str, None, "AWS region (default: from the AWS config)", "REGION"),
    Option("endpoint_url", _str, None, "SageMaker runtime URL override (VPC endpoint, local emulator)", "URL"),
    Option("inference_component", _str, None, "SageMaker inference component name", "NAME"),
    Option("custom_attributes", _str, None, "SageMaker custom attributes header", "TEXT"),
    Option("target_variant", _str, None, "SageMaker production variant to invoke", "NAME"),
    Option("aws_profile", _str, None, "AWS profile for credentials", "NAME"),
    Option("model", _str, None, "model name sent to the server (default: the one it lists)"),
    Option("model_version", _str, None, "Triton model version (default: the server's policy)", "V"),
    Option(
        "triton",
        _triton,
        None,
        f"Triton inputs/outputs: preset ({', '.join(PRESETS)}) and field names, e.g. preset=trtllm",
        "SPEC",
    ),
    Option(
        "concurrency",
        lambda v: parse_levels(v, integer=True),
        None,
        "closed loop: virtual users; a sweep takes 1..64 (doubling) or 1,8,32",
        "N",
    ),
    Option(
        "rate",
        lambda v: parse_levels(v, integer=False),
        None,
        "open loop: arrivals per second; a sweep takes 1..16 or 1,2,5",
        "R",
    ),
    Option(
        "batch_size",
        lambda v: parse_levels(v, integer=True),
        None,
        "prompts per request (APIs that take a list); a sweep takes 1..32",
        "B",
    ),
    Option("arrival", _choice(*(a.value for a in Arrival)), "poisson", "open-loop arrival process", "KIND"),
    Option("burstiness", _positive_float, 1.0, "gamma shape: 1 = Poisson, <1 burstier, >1 smoother", "B"),
    Option(
        "max_inflight",
        _int(1),
        None,
        "open loop: cap on requests in flight (waiting counts as latency; "
        "without it 10,000, or fewer where the file limit or memory hold fewer)",
        "N",
    ),
    Option("ramp_up", parse_duration_s, 0.0, "closed loop: start the users evenly over this time", "T"),
    Option(
        "stages", _stages, None, "load stages with linear ramps: 30s:c=16,1m:c=64 (users) or 30s:r=5 (req/s)", "LIST"
    ),
    Option(
        "trace",
        _str,
        None,
        "replay a trace on its own schedule: loadgen or Mooncake JSONL, Azure or BurstGPT CSV",
        "FILE",
    ),
    Option(
        "trace_format",
        _choice("loadgen", "mooncake", "azure", "burstgpt"),
        None,
        "the trace's format (default: recognised from the file)",
        "NAME",
    ),
    Option("trace_speed", _positive_float, 1.0, "replay the trace this many times faster", "X"),
    Option(
        "sessions", _str, None, "multi-turn sessions (JSONL): each user runs one at a time, turn after turn", "FILE"
    ),
    Option(
        "history",
        _choice("live", "recorded"),
        "live",
        "sessions: send back the server's own answers (live) or the file's recorded replies",
        "MODE",
    ),
    Option(
        "think_time",
        _str,
        "0s",
        "sessions: a user's pause before each turn after the first: 2s, exp:2s (mean) or uniform:1s-3s",
        "T",
    ),
    Option("session_header", _str, None, "sessions: send each session's id in this header (e.g. X-Session-ID)", "NAME"),
    Option("requests", _int(1), None, "measured requests per level (default: 4 per user, at least 8)", "N"),
    Option("duration", parse_duration_s, None, "measure for this long per level instead, e.g. 60s", "T"),
    Option(
        "warmup", _warmup, None, "warm-up per level, excluded: N requests or a duration (default: one per user)", "N|T"
    ),
    Option("prompts", _str, "builtin:default", "prompt file: .jsonl, ShareGPT .json, or text (one per line)", "FILE"),
    Option("synthetic", _str, None, "synthetic prompts, e.g. input=512,output=256,dist=normal,spread=0.2", "SPEC"),
    Option("max_tokens", _int(1), 256, "output tokens per request (prompts may set their own)", "N"),
    Option("ignore_eos", _bool, False, "ask the server to generate exactly max tokens", flag_kind="flag"),
    Option("temperature", _float, None, "sampling temperature", "T"),
    Option("no_stream", _bool, False, "use the non-streaming API (TTFT then equals end-to-end)", flag_kind="flag"),
    Option("extra_body", _extra_body, None, "JSON object merged into every request body", "JSON"),
    Option("slo", lambda v: parse_slo(str(v)), (), "per-request SLOs for goodput, e.g. ttft=500ms,tpot=50ms", "SPEC"),
    Option("find_max", _bool, False, "sweep: search the highest load meeting the percentile --slo", flag_kind="flag"),
    Option(
        "max_error_rate",
        _fraction,
        0.05,
        "exit 3 if a level's failed requests pass this share (a dead or refusing endpoint)",
        "RATE",
    ),
    Option(
        "fail_on",
        _thresholds,
        (),
        "exit 99 if a level breaches this, e.g. 'ttft_p99>500ms' (repeatable)",
        "EXPR",
        flag_kind="append",
    ),
    Option("variants", _variants, None, "compare: [{name, endpoint, extra_body}, ...] (scenario files)", "LIST"),
    Option("seed", _int(0), 0, "seed for prompt order and arrivals", "N"),
    Option("header", _headers, [], "extra HTTP header 'Name: value' (repeatable)", "H", flag_kind="append"),
    Option("api_key_env", _str, None, "environment variable holding the API key (sent as a Bearer token)", "VAR"),
    Option("output", _str, None, "result directory (default: results/<timestamp>)", "DIR"),
    Option("tokenizer", _str, None, "tokenizer.json path or tiktoken:ENCODING for counting tokens", "SPEC"),
    Option("connect_timeout", parse_positive_duration_s, 10.0, "connect timeout", "T"),
    Option(
        "first_token_timeout",
        parse_positive_duration_s,
        120.0,
        "longest wait for the first token, or between chunks",
        "T",
    ),
    Option("request_timeout", parse_positive_duration_s, 600.0, "total time allowed per request", "T"),
    Option("drain_timeout", parse_duration_s, 30.0, "at the end, wait this long for requests in flight", "T"),
    Option("insecure", _bool, False, "do not verify TLS certificates", flag_kind="flag"),
    Option("sim_profile", _str, "llama2-7b-h100", "built-in simulator profile when no --endpoint is given", "NAME"),
    Option(
        "sim_prefix_cache", _bool, False, "the built-in simulator keeps a prefix cache (as vLLM's)", flag_kind="flag"
    ),
    Option("sim_reasoning_tokens", _int(0), 0, "the built-in simulator thinks this many tokens before answering", "N"),
    Option("hlog_interval", parse_positive_duration_s, 1.0, "interval of the .hlog histogram logs", "T"),
    Option("quiet", _bool, False, "no live status line", flag_kind="flag"),
    Option("save_text", _bool, False, "keep each answer's text in requests.jsonl (compare uses it)", flag_kind="flag"),
    Option(
        "workers",
        _int(1),
        None,
        "worker processes sharing the load (default: one per 2,000 req/s or 256 users, at most one per CPU)",
        "N",
    ),
    Option("telemetry", _telemetry, (), f"sample {','.join(TELEMETRY_SOURCES)} while the load runs", "LIST"),
    Option("telemetry_interval", parse_duration_s, 0.25, "telemetry sampling interval", "T"),
    Option("telemetry_url", _str, None, "pull telemetry from 'loadgen monitor' on another host", "URL"),
    Option("server_metrics", _str, None, "Prometheus URL of the server (default: ENDPOINT/metrics)", "URL"),
    Option("server_metric", _names, (), "other server metric names to record (comma-separated)", "NAMES"),
    Option("gpu_devices", _names, (), "GPUs to sample: indices or UUIDs (default: all)", "LIST"),
    Option(
        "server_timings",
        _choice("auto", "otlp", "off"),
        "auto",
        "the server's own account of each request: auto (llama.cpp timings, TGI headers; a traceparent is sent), "
        "otlp (also receive its OpenTelemetry spans), off",
        "MODE",
    ),
    Option(
        "otlp_listen",
        _host_port,
        None,
        "--server-timings otlp: where the OTLP/HTTP receiver listens (default 127.0.0.1:4318; with the built-in "
        "simulator, a free port)",
        "HOST:PORT",
    ),
    Option(
        "otlp_grpc_listen",
        _host_port,
        None,
        "--server-timings otlp: also receive OTLP over gRPC here (vLLM's default protocol, TGI's only one), "
        "e.g. 127.0.0.1:4317",
        "HOST:PORT",
    ),
    Option(
        "otlp_wait",
        parse_positive_duration_s,
        10.0,
        "--server-timings otlp: after a level, wait at most this long for its spans",
        "T",
    ),
)
OPTIONS_BY_NAME = {option.name: option for option in OPTIONS}


def load_scenario(path: str) -> dict[str, object]:
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{path}: no such scenario file")
    try:
        data = yaml.safe_load(file.read_text("utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of options at the top level")
    scenario: dict[str, object] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        option = OPTIONS_BY_NAME.get(name)
        if option is None:
            keys = [known.replace("_", "-") for known in OPTIONS_BY_NAME]
            raise ConfigError(f"{path}: unknown key {key!r}{did_you_mean(str(key).replace('_', '-'), keys)}; "
                              f"expected one of {', '.join(keys)}")  # fmt: skip
        scenario[name] = convert(option, value, f"{path}: key {key!r}")
    base = file.parent
    for name in ("prompts", "tokenizer"):
        value = scenario.get(name)
        if isinstance(value, str) and not value.startswith(("builtin:", "tiktoken:")) and not Path(value).is_absolute():
            scenario[name] = str(base / value)
    return scenario


def convert(option: Option, value: object, where: str) -> Any:
    try:
        return option.convert(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


@dataclass(frozen=True, slots=True)
class Settings:
    """Every option, resolved and converted; one field per entry of ``OPTIONS``."""

    endpoint: str | None
    api: str
    schema: str | None
    endpoint_name: str | None
    region: str | None
    endpoint_url: str | None
    inference_component: str | None
    custom_attributes: str | None
    target_variant: str | None
    aws_profile: str | None
    model: str | None
    model_version: str | None
    triton: dict[str, object] | None
    concurrency: list[float] | None
    rate: list[float] | None
    batch_size: list[float] | None
    arrival: str
    burstiness: float
    max_inflight: int | None
    ramp_up: float
    stages: tuple[str, tuple[Stage, ...]] | None
    trace: str | None
    trace_format: str | None
    trace_speed: float
    sessions: str | None
    history: str
    think_time: str
    session_header: str | None
    requests: int | None
    duration: float | None
    warmup: tuple[int, float] | None
    prompts: str
    synthetic: str | None
    max_tokens: int
    ignore_eos: bool
    temperature: float | None
    no_stream: bool
    extra_body: dict[str, object] | None
    slo: tuple[SloTarget, ...]
    fail_on: tuple[Any, ...]
    max_error_rate: float
    find_max: bool
    variants: list[object] | None
    seed: int
    header: list[tuple[str, str]]
    api_key_env: str | None
    output: str | None
    tokenizer: str | None
    connect_timeout: float
    first_token_timeout: float
    request_timeout: float
    drain_timeout: float
    insecure: bool
    sim_profile: str
    sim_prefix_cache: bool
    sim_reasoning_tokens: int
    hlog_interval: float
    quiet: bool
    save_text: bool
    workers: int | None
    telemetry: tuple[str, ...]
    telemetry_interval: float
    telemetry_url: str | None
    server_metrics: str | None
    server_metric: tuple[str, ...]
    gpu_devices: tuple[str, ...]
    server_timings: str
    otlp_listen: tuple[str, int] | None
    otlp_grpc_listen: tuple[str, int] | None
    otlp_wait: float

    def recorded(self) -> dict[str, object]:
        """The options worth recording with results: header values can hold secrets, and so can a
        URL's ``user:password@`` and query string, which are left out."""
        recorded: dict[str, object] = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name == "header" or value is None:
                continue
            recorded[field.name] = public_url(value) if field.name in URL_OPTIONS and isinstance(value, str) else value
        return recorded


def resolve(flags: dict[str, object], scenario: dict[str, object]) -> Settings:
    """Flag values (already converted) over scenario values over defaults."""
    resolved: dict[str, Any] = {}
    for option in OPTIONS:
        if flags.get(option.name) is not None:
            resolved[option.name] = flags[option.name]
        elif option.name in scenario:
            resolved[option.name] = scenario[option.name]
        else:
            resolved[option.name] = option.default
    return Settings(**resolved)
