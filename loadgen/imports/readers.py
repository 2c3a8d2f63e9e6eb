"""Import layer: readers for other tools' result files, written from each tool's documented format.

Metric definitions differ between tools; each reader maps them onto loadgen's:

- loadgen ``ttft``: send to first token. Every tool's TTFT is the same idea.
- loadgen ``tpot``: (end-to-end − TTFT) ÷ (output tokens − 1), per request. AIPerf's and
  GenAI-Perf's "inter token latency", vLLM bench's TPOT, GuideLLM's "inter token latency" (which
  excludes the first token) and NIM's published "ITL" are this figure.
- loadgen ``itl_chunk``: the gaps between streamed chunks. vLLM bench's ITL and AIPerf's
  "inter chunk latency" are this (equal to loadgen's ``itl`` when each chunk carries one token).
- loadgen ``e2e``: send to last byte: AIPerf's/GenAI-Perf's "request latency", vLLM's E2EL,
  GuideLLM's "request latency".
- GuideLLM's "time per output token" includes the first token (end-to-end ÷ output tokens): it
  has no loadgen equivalent and is not imported.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loadgen.errors import ConfigError
from loadgen.imports.model import ImportedLevel, ImportedSweep, lacking

FORMATS = ("auto", "aiperf", "genai-perf", "vllm-bench", "guidellm", "table")

TPOT_DEFINITION = "(end-to-end − TTFT) ÷ (output tokens − 1) per request"
MAX_FILE_BYTES = 512 * 1024 * 1024
MAX_LEVELS = 10_000  # per file: a sweep, not a request log
_UNIT_TO_MS = {"ms": 1.0, "msec": 1.0, "milliseconds": 1.0, "s": 1000.0, "sec": 1000.0, "secs": 1000.0,
               "seconds": 1000.0, "us": 0.001, "µs": 0.001, "usec": 0.001, "ns": 1e-6}  # fmt: skip


def read_results(paths: list[Path], fmt: str = "auto", loads: list[float] | None = None, load_mode: str = "closed",
                 output_tokens: float | None = None, input_tokens: float | None = None,
                 itl_is: str = "tpot") -> ImportedSweep:  # fmt: skip
    """Every file's levels, as one sweep. ``loads`` gives each file's concurrency (or rate, with
    ``load_mode="open"``) where the file does not say it."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")
    if loads is not None and len(loads) != len(paths):
        raise ConfigError(f"--load: {len(loads)} values for {len(paths)} files; give one per file, in order")
    sweeps = []
    for number, path in enumerate(paths):
        text = _read_text(path)
        kind = _detect(path, text) if fmt == "auto" else fmt
        load = loads[number] if loads is not None else None
        sweeps.append(_read_one(path, text, kind, _Hint(load, load_mode, output_tokens, input_tokens, itl_is)))
    tools = {sweep.tool for sweep in sweeps}
    if len(tools) != 1:
        raise ConfigError(f"the files come from different tools ({', '.join(sorted(tools))}); import them apart")
    first = sweeps[0]
    levels = [level for sweep in sweeps for level in sweep.levels]
    seen = {(level.mode, level.load) for level in levels}
    if len(seen) != len(levels):
        raise ConfigError(f"two levels at the same load in {', '.join(map(str, paths))}; give --load per file")
    statistics = {s for level in levels for stats in level.latency_ms.values() for s in stats}
    assumptions = list(dict.fromkeys(a for sweep in sweeps for a in sweep.assumptions))
    lacks = [*first.lacks, *(item for item in lacking(statistics) if item not in first.lacks)]
    return ImportedSweep(first.tool, [str(p) for p in paths], levels, first.definitions, lacks, assumptions)


def _read_one(path: Path, text: str, kind: str, hint: _Hint) -> ImportedSweep:
    """One file through its reader. The readers check the fields they read; a file whose shape
    they did not foresee (a list where an object belongs …) is still one line naming it."""
    try:
        sweep = READERS[kind](path, text, hint)
    except (TypeError, AttributeError, KeyError, IndexError, OverflowError) as error:
        raise ConfigError(f"{path}: not the shape of a {kind} result ({type(error).__name__}: "
                          f"{str(error)[:120]})") from None  # fmt: skip
    for level in sweep.levels:
        if not level.load > 0:
            raise ConfigError(f"{level.where}: load {level.load:g}; a concurrency or rate is above 0")
    return sweep


def _at_most_levels(path: Path, count: int) -> None:
    if count > MAX_LEVELS:
        raise ConfigError(f"{path}: {count:,} levels; at most {MAX_LEVELS:,} per file (a sweep, not a request log)")


class _Hint:
    """What the command line says about files that do not say it themselves."""

    def __init__(self, load: float | None, mode: str, output_tokens: float | None, input_tokens: float | None,
                 itl_is: str) -> None:  # fmt: skip
        self.load, self.mode = load, mode
        self.output_tokens, self.input_tokens = output_tokens, input_tokens
        self.itl_is = itl_is


def _read_text(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ConfigError(f"{path}: over {MAX_FILE_BYTES >> 20} MiB; a result file is smaller")
        return path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read it ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (expected JSON, CSV or a Markdown table)") from None


def _detect(path: Path, text: str) -> str:
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        data = _json(path, text)
        if isinstance(data, dict):
            if "benchmarks" in data:
                return "guidellm"
            if "mean_ttft_ms" in data or ("request_throughput" in data and "completed" in data):
                return "vllm-bench"
            if "time_to_first_token" in data or "request_latency" in data or "request_throughput" in data:
                config = data.get("input_config")
                command = str(config.get("cli_command")) if isinstance(config, dict) else ""
                aiperf = isinstance(config, dict) and ("loadgen" in config or "aiperf" in command)
                return "aiperf" if aiperf or "aiperf" in path.name else "genai-perf"
        raise ConfigError(f"{path}: JSON, but not an AIPerf, GenAI-Perf, vllm bench serve or GuideLLM result; "
                          "give --format")  # fmt: skip
    first_cell = stripped.split("\n", 1)[0].split(",", 1)[0].strip().strip('"').lower()
    if first_cell == "metric":
        return "genai-perf" if "genai" in path.name else "aiperf"
    if stripped:
        return "table"
    raise ConfigError(f"{path}: empty")


def _fill_lengths(level: ImportedLevel, hint: _Hint) -> None:
    """Request lengths the file lacks, from the command line (and said so)."""
    if level.output_tokens_per_request is None and hint.output_tokens is not None:
        level.output_tokens_per_request = hint.output_tokens
        level.derived.append(f"output tokens per request: {hint.output_tokens:g}, from --output-tokens")
    if level.input_tokens_per_request is None and hint.input_tokens is not None:
        level.input_tokens_per_request = hint.input_tokens
        level.derived.append(f"input tokens per request: {hint.input_tokens:g}, from --input-tokens")


def _json(path: Path, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as error:  # huge integers too (Python's limit on digits)
        raise ConfigError(f"{path}: not valid JSON ({str(error)[:160]})") from None
    except RecursionError:
        raise ConfigError(f"{path}: JSON nested too deeply to be a result file") from None


def _number(value: object, where: str) -> float | None:
    """A figure (finite, ≥ 0: every figure imported is a time, a rate or a count), or None for a
    missing one (null, empty, a dash, n/a); anything else is an error."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, int | float):
        figure = _finite(value, where)
    elif isinstance(value, str):
        text = value.strip().replace(",", "").replace("_", "")
        if text.lower() in ("", "-", "–", "—", "n/a", "na", "none", "null", "nan"):
            return None
        try:
            figure = float(text)
        except ValueError:
            raise ConfigError(f"{where}: {_shown(value)} is not a number") from None
    else:
        raise ConfigError(f"{where}: {_shown(value)} is not a number")
    if not math.isfinite(figure) or figure < 0:
        raise ConfigError(f"{where}: {_shown(value)}: expected a finite figure ≥ 0")
    return figure


def _finite(value: int | float, where: str) -> float:
    try:
        return float(value)
    except OverflowError:
        raise ConfigError(f"{where}: a number too large to be a figure") from None


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _to_ms(unit: str | None, where: str) -> float:
    if unit is None:
        raise ConfigError(f"{where}: a latency without a unit; name it in the header, e.g. 'TTFT p99 (ms)'")
    factor = _UNIT_TO_MS.get(unit.strip().lower())
    if factor is None:
        raise ConfigError(f"{where}: unit {unit!r} is not a time unit (expected ms, s or us)")
    return factor


def _set_latencies(level: ImportedLevel, metric: str, stats: dict[str, Any], factor: float, where: str) -> None:
    """The statistics loadgen keeps from ``{name: value}`` (in the source's unit, ``factor`` to ms);
    ``where`` + the name locates a bad value."""
    for name, value in stats.items():
        statistic = _statistic(name)
        figure = _number(value, f"{where}{name}") if statistic else None
        if statistic and figure is not None:
            level.set_latency(metric, statistic, figure * factor)


def _statistic(word: str) -> str | None:
    word = word.lower()
    if word in ("avg", "mean", "average"):
        return "mean"
    if word in ("median", "p50"):
        return "p50"
    if word in ("min", "max"):
        return word
    match = re.fullmatch(r"p(\d{1,2})(?:[._]?(\d+))?", word)
    if match is None:
        return None
    whole, fraction = match.groups()
    if whole == "99" and fraction in ("9", "90"):
        return "p99_9"
    if fraction is None and whole in ("90", "95", "99"):
        return f"p{whole}"
    return None  # percentiles loadgen does not keep (p25, p75, p1 …)


# --- AIPerf and GenAI-Perf ------------------------------------------------------------------------

_PROFILE_METRICS = {  # their JSON key → loadgen metric
    "time_to_first_token": "ttft", "inter_token_latency": "tpot", "request_latency": "e2e",
    "inter_chunk_latency": "itl_chunk", "time_to_first_output_token": "ttfot",
}  # fmt: skip


def _nvidia_definitions(tool: str) -> dict[str, str]:
    name = "AIPerf" if tool == "aiperf" else "GenAI-Perf"
    return {"ttft": f"{name} time_to_first_token", "tpot": f"{name} inter_token_latency: {TPOT_DEFINITION}",
            "itl_chunk": f"{name} inter_chunk_latency (gaps between streamed chunks)",
            "e2e": f"{name} request_latency",
            "ttfot": f"{name} time_to_first_output_token (the first non-reasoning token)",
            "throughput": f"{name} request_throughput and output_token_throughput"}  # fmt: skip


def _profile_load(data: dict[str, Any], hint: _Hint, path: Path) -> tuple[str, float]:
    config: dict[str, Any] = data["input_config"] if isinstance(data.get("input_config"), dict) else {}
    places = [config.get("loadgen"), config, (config.get("perf_analyzer") or {}).get("stimulus")
              if isinstance(config.get("perf_analyzer"), dict) else None]  # fmt: skip
    for place in places:
        if not isinstance(place, dict):
            continue
        rate = _number(place.get("request_rate"), f"{path}: input_config request_rate")
        concurrency = _number(place.get("concurrency"), f"{path}: input_config concurrency")
        if rate:
            return "open", rate
        if concurrency:
            return "closed", concurrency
    return _hinted_load(hint, path)


def _hinted_load(hint: _Hint, path: Path) -> tuple[str, float]:
    if hint.load is not None:
        return hint.mode, hint.load
    match = re.search(r"concurrency[_-]?(\d+)", str(path), re.IGNORECASE)
    if match:
        return "closed", float(match.group(1))
    raise ConfigError(f"{path}: the file does not say its concurrency or request rate; give --load")


def read_profile_json(path: Path, text: str, hint: _Hint, tool: str) -> ImportedSweep:
    data = _json(path, text)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object (profile_export_*.json)")
    mode, load = _profile_load(data, hint, path)
    level = ImportedLevel(mode, load, where=str(path))
    for key, metric in _PROFILE_METRICS.items():
        stats = data.get(key)
        if not isinstance(stats, dict):
            continue
        factor = _to_ms(str(stats.get("unit", "ms")), f"{path}: {key}")
        _set_latencies(level, metric, stats, factor, f"{path}: {key}.")

    def avg(key: str) -> float | None:
        stats = data.get(key)
        value = stats.get("avg") if isinstance(stats, dict) else stats
        return _number(value, f"{path}: {key}")

    level.requests_per_s = avg("request_throughput")
    level.output_tokens_per_s = avg("output_token_throughput")
    level.output_tokens_per_request = avg("output_sequence_length")
    level.input_tokens_per_request = avg("input_sequence_length")
    _fill_lengths(level, hint)
    count, errors = avg("request_count"), avg("error_request_count")
    level.completed = int(count) if count is not None else None
    level.failed = int(errors) if errors is not None else (0 if count is not None else None)
    level.duration_s = avg("benchmark_duration")
    return ImportedSweep(tool, [str(path)], [level], _nvidia_definitions(tool), ["telemetry"])


_CSV_ROWS = {  # the start of their CSV metric name → (loadgen field, is a latency)
    "time to first token": ("ttft", True), "inter token latency": ("tpot", True), "request latency": ("e2e", True),
    "inter chunk latency": ("itl_chunk", True), "output sequence length": ("output_tokens_per_request", False),
    "input sequence length": ("input_tokens_per_request", False), "request throughput": ("requests_per_s", False),
    "output token throughput (": ("output_tokens_per_s", False), "request count": ("completed", False),
    "benchmark duration": ("duration_s", False),
}  # fmt: skip


def read_profile_csv(path: Path, text: str, hint: _Hint, tool: str) -> ImportedSweep:
    mode, load = _hinted_load(hint, path)
    level = ImportedLevel(mode, load, where=str(path))
    header: list[str] = []
    for number, row in enumerate(csv.reader(io.StringIO(text)), 1):
        if not row or not any(cell.strip() for cell in row):
            header = []
            continue
        if row[0].strip().lower() == "metric":
            header = [cell.strip().lower() for cell in row]
            continue
        if not header or header[0] != "metric":
            continue  # the GPU telemetry section, or text before the first section
        name = row[0].strip()
        where = f"{path}:{number}: {name}"
        target = next((field for prefix, field in _CSV_ROWS.items() if name.lower().startswith(prefix)), None)
        if target is None:
            continue
        field, is_latency = target
        values = dict(zip(header[1:], row[1:], strict=False))
        if is_latency:
            unit = re.search(r"\(([^)]*)\)\s*$", name)
            factor = _to_ms(unit.group(1) if unit else None, where)
            _set_latencies(level, field, values, factor, f"{where} ")
        else:
            figure = _number(values.get("avg", values.get("value")), where)
            setattr(level, field, int(figure) if field == "completed" and figure is not None else figure)
    _fill_lengths(level, hint)
    if not level.latency_ms:
        raise ConfigError(f"{path}: no 'Metric,avg,…' section with latencies (an AIPerf or GenAI-Perf CSV export?)")
    return ImportedSweep(tool, [str(path)], [level], _nvidia_definitions(tool), ["telemetry", "error counts"])


# --- vllm bench serve -----------------------------------------------------------------------------

_VLLM_METRICS = {"ttft": "ttft", "tpot": "tpot", "itl": "itl_chunk", "e2el": "e2e"}


def read_vllm_bench(path: Path, text: str, hint: _Hint) -> ImportedSweep:
    data = _json(path, text)
    if not isinstance(data, dict) or "request_throughput" not in data:
        raise ConfigError(f"{path}: not a 'vllm bench serve --save-result' file (no request_throughput)")
    assumptions = []
    rate = data.get("request_rate")
    rate_value = math.inf if rate in (None, "inf", "Infinity") else _number(rate, f"{path}: request_rate")
    concurrency = _number(data.get("max_concurrency"), f"{path}: max_concurrency")
    if rate_value is not None and math.isfinite(rate_value):
        mode, load = "open", rate_value
        if concurrency:
            assumptions.append(f"{path.name}: offered {rate_value:g} req/s, capped at {concurrency:g} in flight")
    elif concurrency:
        mode, load = "closed", concurrency
        assumptions.append(f"{path.name}: infinite request rate capped at {concurrency:g} in flight: read as "
                           f"{concurrency:g} concurrent users")  # fmt: skip
    else:
        mode, load = _hinted_load(hint, path)
    level = ImportedLevel(mode, load, where=str(path))
    for key, value in data.items():
        match = re.fullmatch(r"(mean|median|p[\d.]+)_(ttft|tpot|itl|e2el)_ms", key)
        if match:
            statistic = _statistic(match.group(1).replace(".", "_"))
            if statistic:
                level.set_latency(_VLLM_METRICS[match.group(2)], statistic, _number(value, f"{path}: {key}"))
    completed = _number(data.get("completed"), f"{path}: completed")
    level.completed = int(completed) if completed is not None else None
    failed = _number(data.get("failed"), f"{path}: failed")
    prompts = _number(data.get("num_prompts"), f"{path}: num_prompts")
    if failed is None and prompts is not None and completed is not None:
        failed = prompts - completed
    level.failed = int(failed) if failed is not None else None
    level.requests_per_s = _number(data.get("request_throughput"), f"{path}: request_throughput")
    level.output_tokens_per_s = _number(data.get("output_throughput"), f"{path}: output_throughput")
    level.duration_s = _number(data.get("duration"), f"{path}: duration")
    if completed:
        total_out = _number(data.get("total_output_tokens"), f"{path}: total_output_tokens")
        total_in = _number(data.get("total_input_tokens"), f"{path}: total_input_tokens")
        level.output_tokens_per_request = total_out / completed if total_out is not None else None
        level.input_tokens_per_request = total_in / completed if total_in is not None else None
        if total_in is not None and level.duration_s:
            level.input_tokens_per_s = total_in / level.duration_s
            level.derived.append("input_tokens_per_s = total_input_tokens ÷ duration")
    _fill_lengths(level, hint)
    definitions = {"ttft": "vllm bench TTFT", "tpot": f"vllm bench TPOT: {TPOT_DEFINITION}",
                   "itl_chunk": "vllm bench ITL (gaps between streamed chunks)", "e2e": "vllm bench E2EL",
                   "throughput": "vllm bench request_throughput and output_throughput"}  # fmt: skip
    return ImportedSweep("vllm-bench", [str(path)], [level], definitions, ["telemetry"], assumptions)


# --- GuideLLM -------------------------------------------------------------------------------------

_GUIDELLM_METRICS = {"time_to_first_token_ms": ("ttft", 1.0), "inter_token_latency_ms": ("tpot", 1.0),
                     "request_latency": ("e2e", 1000.0),
                     "time_to_first_output_token_ms": ("ttfot", 1.0)}  # fmt: skip


def _successful(metrics: dict[str, Any], key: str) -> dict[str, Any]:
    value = metrics.get(key)
    successful = value.get("successful") if isinstance(value, dict) else None
    return successful if isinstance(successful, dict) else {}


def _guidellm_strategy(benchmark: dict[str, Any]) -> dict[str, Any]:
    for holder in (benchmark.get("args"), benchmark.get("config"), benchmark.get("scheduler"), benchmark):
        strategy = holder.get("strategy") if isinstance(holder, dict) else None
        if isinstance(strategy, dict):
            return strategy
    return {}


def read_guidellm(path: Path, text: str, hint: _Hint) -> ImportedSweep:
    data = _json(path, text)
    benchmarks = data.get("benchmarks") if isinstance(data, dict) else None
    if not isinstance(benchmarks, list) or not benchmarks:
        raise ConfigError(f"{path}: no benchmarks (a GuideLLM benchmarks.json?)")
    _at_most_levels(path, len(benchmarks))
    levels, assumptions = [], []
    for number, benchmark in enumerate(benchmarks, 1):
        where = f"{path}: benchmark {number}"
        metrics = benchmark.get("metrics") if isinstance(benchmark, dict) else None
        if not isinstance(metrics, dict):
            raise ConfigError(f"{where}: no metrics")
        strategy = _guidellm_strategy(benchmark)
        kind = str(strategy.get("type_") or strategy.get("type") or "")
        if kind == "synchronous":
            mode, load = "closed", 1.0
        elif kind == "concurrent" and (streams := _number(strategy.get("streams"), f"{where}: strategy.streams")):
            mode, load = "closed", streams
        elif kind in ("constant", "poisson", "async") and (
            rate := _number(strategy.get("rate"), f"{where}: strategy.rate")
        ):
            mode, load = "open", rate
        elif kind == "throughput":
            mean = _number(_successful(metrics, "request_concurrency").get("mean"), f"{where}: request_concurrency")
            if mean is None:
                raise ConfigError(f"{where}: a throughput benchmark without request_concurrency")
            mode, load = "closed", round(mean)
            assumptions.append(f"benchmark {number} (throughput): read at its mean concurrency, {mean:.1f}")
        else:
            raise ConfigError(f"{where}: strategy {kind or 'missing'!r}; expected synchronous, concurrent, "
                              "constant, poisson or throughput")  # fmt: skip
        level = ImportedLevel(mode, load, where=where)
        for key, (metric, factor) in _GUIDELLM_METRICS.items():
            stats = _successful(metrics, key)
            values = {"mean": stats.get("mean"), "p50": stats.get("median"), "min": stats.get("min"),
                      "max": stats.get("max"), **(stats.get("percentiles") or {})}  # fmt: skip
            _set_latencies(level, metric, values, factor, f"{where}: {key}.")
        level.requests_per_s = _number(_successful(metrics, "requests_per_second").get("mean"), where)
        level.output_tokens_per_s = _number(_successful(metrics, "output_tokens_per_second").get("mean"), where)
        level.output_tokens_per_request = _number(_successful(metrics, "output_token_count").get("mean"), where)
        level.input_tokens_per_request = _number(_successful(metrics, "prompt_token_count").get("mean"), where)
        totals = benchmark.get("request_totals") or metrics.get("request_totals") or {}
        if isinstance(totals, dict):
            successful = _number(totals.get("successful"), f"{where}: request_totals")
            errored = _number(totals.get("errored"), f"{where}: request_totals")
            level.completed = int(successful) if successful is not None else None
            level.failed = int(errored) if errored is not None else None
        _fill_lengths(level, hint)
        levels.append(level)
    definitions = {"ttft": "GuideLLM time_to_first_token", "tpot": f"GuideLLM inter_token_latency: {TPOT_DEFINITION}",
                   "e2e": "GuideLLM request_latency",
                   "ttfot": "GuideLLM time_to_first_output_token_ms (the first content token)",
                   "not imported": "GuideLLM time_per_output_token (includes the first token: end-to-end ÷ tokens)",
                   "throughput": "GuideLLM requests_per_second and output_tokens_per_second (means)"}  # fmt: skip
    return ImportedSweep("guidellm", [str(path)], levels, definitions, ["telemetry", "itl_chunk"], assumptions)


# --- plain tables (CSV or Markdown) ---------------------------------------------------------------


def _table_rows(path: Path, text: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    markdown = [(n, line) for n, line in lines if line.lstrip().startswith("|")]
    if markdown:  # a Markdown table; text around it (a title, notes) is not part of it
        rows = []
        for number, line in markdown:
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if all(re.fullmatch(r":?-{2,}:?", cell) for cell in cells if cell):
                continue  # the separator under the header
            rows.append((number, cells))
    else:
        header = lines[0][1] if lines else ""
        delimiter = max(",;\t", key=header.count)  # csv.Sniffer guesses wrong on short samples
        reader = csv.reader(io.StringIO("\n".join(line for _, line in lines)), delimiter=delimiter)
        rows = [(number, [cell.strip() for cell in row]) for (number, _), row in zip(lines, reader, strict=False)]
    if len(rows) < 2:
        raise ConfigError(f"{path}: a table needs a header row and at least one row of figures")
    _at_most_levels(path, len(rows) - 1)
    return rows[0][1], rows[1:]


class _Column:
    def __init__(self, kind: str, field: str, statistic: str = "", factor: float = 1.0) -> None:
        self.kind, self.field, self.statistic, self.factor = kind, field, statistic, factor


def _words(text: str) -> list[str]:
    return [word for word in re.split(r"[\s_\-:/]+|(?<=[a-z])(?=\()", text) if word]


def _classify(header: str, itl_is: str, where: str) -> _Column | None:
    """What a column holds, from its header: 'TTFT p99 (ms)', 'ttft_p99_ms', 'Mean ITL (ms)',
    'Concurrency', 'Output tokens/s', 'requests_per_s' …; None for a column not used."""
    text = header.strip().lower().replace("µ", "u")
    unit = None
    bracket = re.search(r"[(\[]([^)\]]*)[)\]]\s*$", text)
    if bracket:
        unit, text = bracket.group(1).strip(), text[: bracket.start()].strip()
    compact = text.replace(" ", "").replace("_", "")
    words = _words(text)
    joined = " ".join(words)  # with a trailing unit word: "output tokens per s"
    if words and words[-1] in _UNIT_TO_MS and len(words) > 1 and unit is None:
        unit, words = words[-1], words[:-1]
    rate_unit = (unit or "").replace(" ", "")
    if compact in ("concurrency", "users", "concurrentusers", "maxconcurrency", "conc", "clients", "streams"):
        return _Column("load", "closed")
    if compact in ("rate", "requestrate", "offeredrate", "arrivalrate", "qps", "offeredqps", "offeredrequestspers"):
        return _Column("load", "open")
    token_units = rate_unit in ("tok/s", "tokens/s", "tokens/sec", "token/s", "tok/sec")
    tokens_rate = token_units or (
        ("tok" in joined or "token" in joined) and ("/s" in text or "per s" in joined or "throughput" in joined)
    )
    if tokens_rate:
        if "input" in joined or "prompt" in joined:
            return _Column("value", "input_tokens_per_s")
        if "total" in joined or "per user" in joined or "per request" in joined:
            return None  # includes input tokens, or a per-request rate: not the output throughput
        return _Column("value", "output_tokens_per_s")
    if compact in ("req/s", "requests/s", "rps", "requestspers", "requestthroughput", "requestspersecond",
                   "throughput(req/s)") or rate_unit in ("req/s", "requests/s", "requests/sec"):  # fmt: skip
        return _Column("value", "requests_per_s")
    metric = None
    if "ttft" in words or "time to first token" in joined:
        metric = "ttft"
    elif "tpot" in words or "time per output token" in joined:
        metric = "tpot"
    elif "itl" in words or "inter token latency" in joined or "intertoken" in compact:
        metric = "tpot" if itl_is == "tpot" else "itl_chunk"
    elif "e2e" in words or "e2el" in words or "latency" in words:
        metric = "e2e"
    if metric is not None:
        statistics = [s for s in (_statistic(word) for word in words) if s]
        statistic = statistics[0] if statistics else "mean?"
        return _Column("latency", metric, statistic, _to_ms(unit, f"{where}: column {header!r}"))
    if compact in ("outputtokens", "osl", "outputlength", "outputlen", "outputsequencelength", "meanoutputtokens"):
        return _Column("value", "output_tokens_per_request")
    if compact in ("inputtokens", "isl", "inputlength", "inputlen", "prompttokens", "inputsequencelength"):
        return _Column("value", "input_tokens_per_request")
    if compact in ("completed", "successful", "successfulrequests", "requests", "count", "requestcount"):
        return _Column("value", "completed")
    if compact in ("failed", "errors", "failedrequests", "errored"):
        return _Column("value", "failed")
    return None


def read_table(path: Path, text: str, hint: _Hint) -> ImportedSweep:
    header, rows = _table_rows(path, text)
    columns = [_classify(name, hint.itl_is, str(path)) for name in header]
    ignored = [name for name, column in zip(header, columns, strict=True) if column is None and name]
    loads = [(i, c) for i, c in enumerate(columns) if c is not None and c.kind == "load"]
    if not loads:
        raise ConfigError(f"{path}: no load column; name one 'concurrency' (users) or 'rate' (offered requests/s)")
    assumptions = []
    if ignored:
        assumptions.append(f"{path.name}: columns not used: {', '.join(ignored)}")
    unnamed = sorted({header[i] for i, c in enumerate(columns) if c is not None and c.statistic == "mean?"})
    if unnamed:
        assumptions.append(f"{path.name}: {', '.join(unnamed)} name no statistic: read as means")
    if any(c is not None and c.kind == "latency" and "itl" in header[i].lower() for i, c in enumerate(columns)):
        assumptions.append(f"{path.name}: ITL read as loadgen's TPOT ({TPOT_DEFINITION}), as NIM and GenAI-Perf "
                           "define it" if hint.itl_is == "tpot" else
                           f"{path.name}: ITL read as gaps between streamed chunks (--itl-is chunk)")  # fmt: skip
    levels = []
    for number, cells in rows:
        where = f"{path}:{number}"
        if len(cells) != len(header):
            raise ConfigError(f"{where}: {len(cells)} cells, the header has {len(header)}")
        load = next(((c.field, v) for (i, c) in loads if (v := _number(cells[i], f"{where}: {header[i]}"))), None)
        if load is None:
            raise ConfigError(f"{where}: no concurrency or rate in this row")
        level = ImportedLevel(load[0], load[1], where=where)
        for name, column, cell in zip(header, columns, cells, strict=True):
            if column is None or column.kind == "load":
                continue
            value = _number(cell, f"{where}: {name}")
            if column.kind == "latency":
                level.set_latency(column.field, column.statistic.rstrip("?"),
                                  None if value is None else value * column.factor)  # fmt: skip
            elif value is not None:
                setattr(level, column.field, int(value) if column.field in ("completed", "failed") else value)
        _fill_lengths(level, hint)
        levels.append(level)
    definitions = {
        "ttft": "the table's TTFT",
        "tpot": f"the table's TPOT or ITL, read as {TPOT_DEFINITION}",
        "e2e": "the table's end-to-end latency",
        "throughput": "the table's requests/s or tokens/s",
    }
    return ImportedSweep("table", [str(path)], levels, definitions, ["telemetry"], assumptions)


def _profile_reader(tool: str) -> Callable[[Path, str, _Hint], ImportedSweep]:
    def read(path: Path, text: str, hint: _Hint) -> ImportedSweep:
        if text.lstrip().startswith("{"):
            return read_profile_json(path, text, hint, tool)
        return read_profile_csv(path, text, hint, tool)

    return read


READERS: dict[str, Callable[[Path, str, _Hint], ImportedSweep]] = {
    "aiperf": _profile_reader("aiperf"),
    "genai-perf": _profile_reader("genai-perf"),
    "vllm-bench": read_vllm_bench,
    "guidellm": read_guidellm,
    "table": read_table,
}


def parse_loads(text: str | None) -> list[float] | None:
    if text is None:
        return None
    values = []
    for part in (piece.strip() for piece in text.split(",") if piece.strip()):
        figure = _number(part, f"--load {text}")
        if figure is None or figure <= 0:
            raise ConfigError(f"--load {text}: expected positive numbers, one per file")
        values.append(figure)
    return values
