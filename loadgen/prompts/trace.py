"""Prompts layer: request traces to replay on their own schedule.

Formats (detected from the file):
- loadgen JSONL: ``{"timestamp": seconds, "prompt" | "messages" | "input_tokens", "output_tokens"?}``;
- Mooncake JSONL: ``{"timestamp": milliseconds, "input_length", "output_length", "hash_ids"}``;
- Azure LLM inference trace CSV: ``TIMESTAMP,ContextTokens,GeneratedTokens`` with wall-clock
  timestamps such as ``2023-11-16 18:15:46.6805900``.
Times become offsets from the first entry. Entries that give only token counts get a synthetic
prompt of that many words (seeded per entry) and ask for their output length.
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from loadgen.errors import ConfigError
from loadgen.prompts.loaders import jsonl_objects
from loadgen.prompts.model import Prompt
from loadgen.prompts.synthetic import WORDS


@dataclass(frozen=True, slots=True)
class TraceEntry:
    offset_ns: int
    prompt: Prompt


def load_trace(source: str, speed: float = 1.0, seed: int = 0) -> list[TraceEntry]:
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"--trace {source}: no such file")
    if speed <= 0:
        raise ConfigError(f"--trace-speed {speed}: expected a positive factor")
    try:
        text = path.read_text("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: not UTF-8 text") from None
    if path.suffix.lower() == ".csv":
        times_s, prompts = _azure_csv(text, source, seed)
    else:
        times_s, prompts = _jsonl(text, source, seed)
    if not times_s:
        raise ConfigError(f"{source}: the trace has no entries")
    order = sorted(range(len(times_s)), key=lambda i: times_s[i])
    start = times_s[order[0]]
    return [TraceEntry(round((times_s[i] - start) / speed * 1e9), prompts[i]) for i in order]


def _synthetic(index: int, input_tokens: int, output_tokens: int | None, seed: int) -> Prompt:
    rng = random.Random(f"trace:{seed}:{index}")
    text = " ".join(rng.choice(WORDS) for _ in range(max(1, input_tokens)))
    return Prompt(id=f"trace-{index}", text=text, max_tokens=output_tokens)


def _count(entry: dict[str, object], key: str, where: str) -> int | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{where}: field {key!r} is {value!r}; expected a whole number >= 0")
    return value


def _jsonl(text: str, source: str, seed: int) -> tuple[list[float], list[Prompt]]:
    times: list[float] = []
    prompts: list[Prompt] = []
    for _, where, entry in jsonl_objects(text, source, "a 'timestamp'"):
        stamp = entry.get("timestamp")
        if not isinstance(stamp, (int, float)) or isinstance(stamp, bool):
            raise ConfigError(f"{where}: field 'timestamp' is {stamp!r}; expected a number")
        index = len(prompts)
        if "input_length" in entry:  # Mooncake: milliseconds
            times.append(stamp / 1000.0)
            input_tokens = _count(entry, "input_length", where) or 1
            prompts.append(_synthetic(index, input_tokens, _count(entry, "output_length", where), seed))
            continue
        times.append(float(stamp))
        output_tokens = _count(entry, "output_tokens", where)
        if isinstance(entry.get("prompt"), str) and entry["prompt"]:
            prompts.append(
                Prompt(id=str(entry.get("id", f"trace-{index}")), text=entry["prompt"], max_tokens=output_tokens)
            )
        elif isinstance(entry.get("messages"), list) and entry["messages"]:
            prompts.append(Prompt(id=str(entry.get("id", f"trace-{index}")), messages=tuple(entry["messages"]),
                                  max_tokens=output_tokens))  # fmt: skip
        elif _count(entry, "input_tokens", where) is not None:
            prompts.append(_synthetic(index, _count(entry, "input_tokens", where) or 1, output_tokens, seed))
        else:
            raise ConfigError(f"{where}: expected 'prompt', 'messages' or 'input_tokens' beside 'timestamp'")
    return times, prompts


def _azure_csv(text: str, source: str, seed: int) -> tuple[list[float], list[Prompt]]:
    reader = csv.DictReader(io.StringIO(text))
    expected = {"TIMESTAMP", "ContextTokens", "GeneratedTokens"}
    if not reader.fieldnames or not expected <= set(reader.fieldnames):
        raise ConfigError(f"{source}: expected the Azure trace columns {', '.join(sorted(expected))}")
    times: list[float] = []
    prompts: list[Prompt] = []
    for number, row in enumerate(reader, 2):
        where = f"{source}:{number}"
        stamp = row["TIMESTAMP"].strip()
        whole, _, fraction = stamp.partition(".")
        try:
            moment = datetime.strptime(whole, "%Y-%m-%d %H:%M:%S")
            context, generated = int(row["ContextTokens"]), int(row["GeneratedTokens"])
        except ValueError:
            raise ConfigError(f"{where}: expected 'YYYY-MM-DD HH:MM:SS.fraction' and whole token counts") from None
        times.append(moment.timestamp() + (float("0." + fraction) if fraction else 0.0))
        prompts.append(_synthetic(len(prompts), context, generated, seed))
    return times, prompts
