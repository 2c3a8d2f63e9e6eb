"""Prompts layer: prompt files. JSONL, ShareGPT JSON, and plain text (one prompt per line).

Every problem is reported as one ``ConfigError`` line naming the file, the line or entry, the
field and what was expected.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from loadgen.errors import ConfigError
from loadgen.prompts.answers import MATCHES
from loadgen.prompts.model import Prompt

BUILTIN_PREFIX = "builtin:"
BUILTIN_SETS = ("default",)


def load_prompts(source: str) -> list[Prompt]:
    if source.startswith(BUILTIN_PREFIX):
        name = source.removeprefix(BUILTIN_PREFIX)
        if name not in BUILTIN_SETS:
            raise ConfigError(f"--prompts {source}: unknown built-in set; expected one of {', '.join(BUILTIN_SETS)}")
        text = resources.files("loadgen.data").joinpath(f"{name}_prompts.jsonl").read_text("utf-8")
        return _parse_jsonl(text, source)
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"--prompts {source}: no such file")
    try:
        text = path.read_text("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror}") from None
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        prompts = _parse_jsonl(text, source)
    elif suffix == ".json":
        prompts = _parse_sharegpt(text, source)
    else:
        prompts = [
            Prompt(id=f"line-{number}", text=line.strip())
            for number, line in enumerate(text.splitlines(), 1)
            if line.strip()
        ]
    if not prompts:
        raise ConfigError(f"{source}: contains no prompts")
    return prompts


def jsonl_objects(text: str, source: str, expected: str) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(line number, "file:line", object) for each non-blank line; one-line errors otherwise."""
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a JSON object with {expected}")
        yield number, where, entry


def _parse_jsonl(text: str, source: str) -> list[Prompt]:
    return [_prompt_from_entry(entry, where, default_id=f"line-{number}")
            for number, where, entry in jsonl_objects(text, source, "'prompt' or 'messages'")]  # fmt: skip


def _expectation(entry: dict[str, object], where: str) -> dict[str, Any]:
    expected = entry.get("expected")
    if expected is None:
        return {}
    match = entry.get("match", "choice" if isinstance(expected, list) else "contains")
    if match not in MATCHES:
        raise ConfigError(f"{where}: field 'match' is {match!r}; expected one of {', '.join(MATCHES)}")
    if isinstance(expected, list):
        if not expected or not all(isinstance(item, str) for item in expected):
            raise ConfigError(f"{where}: field 'expected' must be a string or a list of strings")
        return {"expected": tuple(expected), "match": match}
    if not isinstance(expected, str):
        raise ConfigError(f"{where}: field 'expected' must be a string or a list of strings")
    if match == "regex":
        try:
            re.compile(expected)
        except re.error as exc:
            raise ConfigError(f"{where}: field 'expected' is not a valid regex ({exc})") from None
    return {"expected": expected, "match": match}


def _prompt_from_entry(entry: dict[str, object], where: str, default_id: str) -> Prompt:
    prompt_id = str(entry.get("id", default_id))
    expectation = _expectation(entry, where)
    max_tokens = entry.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1):
        raise ConfigError(f"{where}: field 'max_tokens' is {max_tokens!r}; expected a positive integer")
    if "messages" in entry:
        messages = entry["messages"]
        if (
            not isinstance(messages, list)
            or not messages
            or not all(
                isinstance(message, dict)
                and isinstance(message.get("content"), str)
                and isinstance(message.get("role"), str)
                for message in messages
            )
        ):
            raise ConfigError(f"{where}: field 'messages' must be a non-empty list of {{role, content}} objects")
        return Prompt(id=prompt_id, messages=tuple(messages), max_tokens=max_tokens, **expectation)
    text = entry.get("prompt")
    if not isinstance(text, str) or not text:
        raise ConfigError(f"{where}: expected a non-empty string field 'prompt' (or a 'messages' list)")
    return Prompt(id=prompt_id, text=text, max_tokens=max_tokens, **expectation)


def _parse_sharegpt(text: str, source: str) -> list[Prompt]:
    """ShareGPT: a list of {"id", "conversations": [{"from": "human"|"gpt", "value"}]}; the first
    human turn of each conversation becomes a prompt."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, list):
        raise ConfigError(f"{source}: expected a ShareGPT list of conversations")
    prompts = []
    for position, conversation in enumerate(data):
        turns = conversation.get("conversations") if isinstance(conversation, dict) else None
        if not isinstance(turns, list):
            raise ConfigError(f"{source}: entry {position} has no 'conversations' list")
        first_human = next(
            (turn.get("value") for turn in turns if isinstance(turn, dict) and turn.get("from") in ("human", "user")),
            None,
        )
        if isinstance(first_human, str) and first_human.strip():
            prompts.append(Prompt(id=str(conversation.get("id", position)), text=first_human))
    return prompts
