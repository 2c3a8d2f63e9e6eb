"""Prompts layer: request traces to replay on their own schedule.

Formats (``--trace-format``, or recognised from the file):
- ``loadgen`` JSONL: ``{"timestamp": seconds, "prompt" | "messages" | "input_tokens", "output_tokens"?}``;
- ``mooncake`` JSONL: ``{"timestamp": milliseconds, "input_length", "output_length", "hash_ids"}``,
  as Mooncake's FAST'25 traces: each hash id names a block of 512 prompt tokens, and blocks with
  the same id have the same content, so the replay shares the prefixes the trace shared (and a
  server's prefix cache hits where it hit);
- ``azure`` CSV, the Azure LLM inference traces: ``TIMESTAMP,ContextTokens,GeneratedTokens`` with
  wall-clock timestamps such as ``2023-11-16 18:15:46.6805900``;
- ``burstgpt`` CSV: ``Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type`` (and
  v2's ``Session ID``, ``Elapsed time``), timestamps in seconds; rows with 0 response tokens (the
  service's failures) are left out, as nothing can ask for 0 tokens.
Entries must be in time order (a trace that goes back in time is one line naming the entry); times
become offsets from the first entry. Entries that give only token counts get a synthetic prompt
of that many words (seeded; one word is one token for the simulator) and ask for their output length.
"""

from __future__ import annotations

import csv
import io
import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from loadgen.errors import ConfigError
from loadgen.prompts.loaders import jsonl_objects
from loadgen.prompts.model import Prompt
from loadgen.prompts.synthetic import WORDS

TRACE_FORMATS = ("loadgen", "mooncake", "azure", "burstgpt")
MOONCAKE_BLOCK_TOKENS = 512
AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
BURSTGPT_COLUMNS = ("Timestamp", "Request tokens", "Response tokens")


@dataclass(frozen=True, slots=True)
class TraceEntry:
    offset_ns: int
    prompt: Prompt


@dataclass(frozen=True, slots=True)
class _Row:
    time_s: float
    prompt: Prompt
    where: str


def load_trace(source: str, speed: float = 1.0, seed: int = 0, trace_format: str | None = None) -> list[TraceEntry]:
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"--trace {source}: no such file")
    if speed <= 0:
        raise ConfigError(f"--trace-speed {speed}: expected a positive factor")
    try:
        text = path.read_text("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: not UTF-8 text") from None
    kind = trace_format or recognised_format(path, text)
    if kind not in TRACE_FORMATS:
        raise ConfigError(f"--trace-format {kind}: expected one of {', '.join(TRACE_FORMATS)}")
    readers: dict[str, Callable[[str, str, int], Iterator[_Row]]] = {
        "loadgen": _loadgen, "mooncake": _mooncake, "azure": _azure, "burstgpt": _burstgpt,
    }  # fmt: skip
    rows = list(readers[kind](text, source, seed))
    if not rows:
        raise ConfigError(f"{source}: the trace has no entries")
    for before, row in itertools.pairwise(rows):
        if row.time_s < before.time_s:
            raise ConfigError(f"{row.where}: timestamp {row.time_s:g} s is before the entry above it "
                              f"({before.time_s:g} s); expected entries in time order")  # fmt: skip
    start = rows[0].time_s
    return [TraceEntry(round((row.time_s - start) / speed * 1e9), row.prompt) for row in rows]


def recognised_format(path: Path, text: str) -> str:
    """The trace's format from its header (CSV) or first entry (JSONL)."""
    if path.suffix.lower() == ".csv":
        header = next(csv.reader(io.StringIO(text)), [])
        if set(AZURE_COLUMNS) <= set(header):
            return "azure"
        if set(BURSTGPT_COLUMNS) <= set(header):
            return "burstgpt"
        raise ConfigError(f"{path}:1: columns {', '.join(header) or '(none)'} are neither the Azure trace's "
                          f"({', '.join(AZURE_COLUMNS)}) nor BurstGPT's ({', '.join(BURSTGPT_COLUMNS)})")  # fmt: skip
    for _, _, entry in jsonl_objects(text, str(path), "a 'timestamp'"):
        return "mooncake" if "input_length" in entry or "hash_ids" in entry else "loadgen"
    return "loadgen"


def _words(rng: random.Random, count: int) -> list[str]:
    return [rng.choice(WORDS) for _ in range(max(0, count))]


def _synthetic(index: int, input_tokens: int, output_tokens: int | None, seed: int) -> Prompt:
    text = " ".join(_words(random.Random(f"trace:{seed}:{index}"), max(1, input_tokens)))
    return Prompt(id=f"trace-{index}", text=text, max_tokens=output_tokens)


def _count(entry: dict[str, object], key: str, where: str) -> int | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{where}: field {key!r} is {value!r}; expected a whole number >= 0")
    return value


def _timestamp(entry: dict[str, object], where: str) -> float:
    stamp = entry.get("timestamp")
    if not isinstance(stamp, (int, float)) or isinstance(stamp, bool) or stamp != stamp:
        raise ConfigError(f"{where}: field 'timestamp' is {stamp!r}; expected a number")
    return float(stamp)


def _loadgen(text: str, source: str, seed: int) -> Iterator[_Row]:
    for index, (_, where, entry) in enumerate(jsonl_objects(text, source, "a 'timestamp'")):
        stamp = _timestamp(entry, where)
        output_tokens = _count(entry, "output_tokens", where)
        prompt_id = str(entry.get("id", f"trace-{index}"))
        if isinstance(entry.get("prompt"), str) and entry["prompt"]:
            prompt = Prompt(id=prompt_id, text=entry["prompt"], max_tokens=output_tokens)
        elif isinstance(entry.get("messages"), list) and entry["messages"]:
            prompt = Prompt(id=prompt_id, messages=tuple(entry["messages"]), max_tokens=output_tokens)
        elif (input_tokens := _count(entry, "input_tokens", where)) is not None:
            prompt = _synthetic(index, input_tokens, output_tokens, seed)
        else:
            raise ConfigError(f"{where}: expected 'prompt', 'messages' or 'input_tokens' beside 'timestamp'")
        yield _Row(stamp, prompt, where)


def _mooncake(text: str, source: str, seed: int) -> Iterator[_Row]:
    blocks: dict[int, list[str]] = {}  # a hash id's words: the same block, the same content

    def block(hash_id: int) -> list[str]:
        if hash_id not in blocks:
            blocks[hash_id] = _words(random.Random(f"block:{seed}:{hash_id}"), MOONCAKE_BLOCK_TOKENS)
        return blocks[hash_id]

    for index, (_, where, entry) in enumerate(jsonl_objects(text, source, "a 'timestamp'")):
        stamp_ms = _timestamp(entry, where)
        input_tokens = _count(entry, "input_length", where)
        if input_tokens is None:
            raise ConfigError(f"{where}: expected 'input_length' (a Mooncake trace entry)")
        output_tokens = _count(entry, "output_length", where)
        hash_ids = entry.get("hash_ids", [])
        if not isinstance(hash_ids, list) or not all(isinstance(h, int) and not isinstance(h, bool) for h in hash_ids):
            raise ConfigError(f"{where}: field 'hash_ids' is {hash_ids!r}; expected a list of whole numbers")
        words = [word for hash_id in hash_ids for word in block(hash_id)][:input_tokens]
        # tokens past the listed blocks are the request's own
        words += _words(random.Random(f"trace:{seed}:{index}"), input_tokens - len(words))
        prompt = Prompt(id=f"trace-{index}", text=" ".join(words or ["hello"]), max_tokens=output_tokens)
        yield _Row(stamp_ms / 1000.0, prompt, where)


def _csv_rows(text: str, source: str, columns: tuple[str, ...], name: str) -> Iterator[tuple[str, dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or not set(columns) <= set(reader.fieldnames):
        raise ConfigError(f"{source}:1: expected the {name} columns {', '.join(columns)}; "
                          f"found {', '.join(reader.fieldnames or ()) or 'none'}")  # fmt: skip
    for number, row in enumerate(reader, 2):
        yield f"{source}:{number}", row


def _whole(row: dict[str, str], column: str, where: str) -> int:
    value = (row.get(column) or "").strip()
    try:
        count = int(value)
    except ValueError:
        raise ConfigError(f"{where}: column {column!r} is {value!r}; expected a whole number") from None
    if count < 0:
        raise ConfigError(f"{where}: column {column!r} is {count}; expected a whole number >= 0")
    return count


def _azure(text: str, source: str, seed: int) -> Iterator[_Row]:
    for index, (where, row) in enumerate(_csv_rows(text, source, AZURE_COLUMNS, "Azure trace")):
        stamp = (row["TIMESTAMP"] or "").strip()
        whole, _, fraction = stamp.partition(".")
        try:
            moment = datetime.strptime(whole, "%Y-%m-%d %H:%M:%S").timestamp()
            seconds = moment + (float("0." + fraction) if fraction else 0.0)
        except ValueError:
            raise ConfigError(f"{where}: TIMESTAMP is {stamp!r}; expected 'YYYY-MM-DD HH:MM:SS.fraction'") from None
        context, generated = _whole(row, "ContextTokens", where), _whole(row, "GeneratedTokens", where)
        yield _Row(seconds, _synthetic(index, context, generated or None, seed), where)


def _burstgpt(text: str, source: str, seed: int) -> Iterator[_Row]:
    for index, (where, row) in enumerate(_csv_rows(text, source, BURSTGPT_COLUMNS, "BurstGPT")):
        value = (row["Timestamp"] or "").strip()
        try:
            seconds = float(value)
        except ValueError:
            raise ConfigError(f"{where}: column 'Timestamp' is {value!r}; expected seconds") from None
        request, response = _whole(row, "Request tokens", where), _whole(row, "Response tokens", where)
        if response == 0:
            continue  # a request the service failed: no answer length to ask for
        yield _Row(seconds, _synthetic(index, request, response, seed), where)
