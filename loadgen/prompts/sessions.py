"""Prompts layer: multi-turn sessions (conversations), read from a JSONL file.

One session per line::

    {"id": "support-1", "turns": [
        {"user": "My order has not arrived."},
        {"user": "It was order 1234.", "think_s": 4.0, "assistant": "Let me look that up.", "max_tokens": 64}
    ]}

A turn is ``user`` (a message's text) or ``messages`` (chat messages added to the history, e.g. a
system prompt and a user message), with optional ``assistant`` (the recorded reply, the history's
next message under ``--history recorded``), ``max_tokens`` and ``think_s`` (seconds the user
thinks before sending it; ``--think-time`` otherwise, for every turn after the first). Each turn
sends the whole history: the earlier turns' messages and replies, then its own.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from loadgen.errors import ConfigError
from loadgen.parsing import parse_duration_s
from loadgen.prompts.loaders import jsonl_objects
from loadgen.prompts.model import Prompt

HISTORY_MODES = ("live", "recorded")
ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True, slots=True)
class Turn:
    messages: tuple[dict[str, str], ...]  # what the turn adds to the history before it is sent
    assistant: str | None = None  # the recorded reply
    max_tokens: int | None = None
    think_s: float | None = None


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    turns: tuple[Turn, ...]

    def prompt(self, turn: int, history: tuple[dict[str, str], ...], instance: str) -> Prompt:
        """Turn ``turn`` (0-based) as a request: the history so far, then the turn's own messages."""
        step = self.turns[turn]
        return Prompt(id=f"{self.id}#{turn + 1}", messages=(*history, *step.messages), max_tokens=step.max_tokens,
                      session=instance, turn=turn + 1)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SessionLoad:
    """Sessions as a load: each closed-loop user runs one session at a time, turn after turn."""

    file: str
    sessions: tuple[Session, ...]
    history: str = "live"  # the reply sent back: the server's own answer, or the recorded one
    think: str = "0s"  # before each turn after the first, unless the turn says: see think_time
    seed: int = 0
    pause: tuple[str, float, float] = ("fixed", 0.0, 0.0)  # ``think`` as think_time reads it

    def think_s(self, instance: str, turn: int, step: Turn) -> float:
        """The think time before ``turn`` (0-based) of a session run: the turn's own, none before the
        first, else ``think``'s, drawn (seeded by the run's seed, the session run and the turn) when
        it is a distribution."""
        if step.think_s is not None:
            return step.think_s
        kind, low_s, high_s = self.pause
        if turn == 0 or high_s == 0:
            return 0.0
        if kind == "fixed":
            return low_s
        rng = random.Random(f"think:{self.seed}:{instance}:{turn}")
        return rng.expovariate(1.0 / low_s) if kind == "exp" else rng.uniform(low_s, high_s)


def think_time(text: str) -> tuple[str, float, float]:
    """``2s`` (fixed), ``exp:2s`` (exponential with that mean) or ``uniform:1s-3s``."""
    kind, _, value = text.partition(":") if ":" in text else ("fixed", "", text)
    try:
        if kind == "uniform":
            low, _, high = value.partition("-")
            low_s, high_s = parse_duration_s(low), parse_duration_s(high)
            if not 0 <= low_s <= high_s:
                raise ValueError(value)
            return kind, low_s, high_s
        if kind in ("fixed", "exp"):
            seconds = parse_duration_s(value)
            if seconds < 0 or (kind == "exp" and seconds == 0):
                raise ValueError(value)
            return kind, seconds, seconds
    except ValueError:
        pass
    raise ConfigError(f"--think-time {text}: expected a duration (2s), exp:MEAN (exp:2s) or uniform:LOW-HIGH "
                      "(uniform:1s-3s)")  # fmt: skip


def session_load(source: str, history: str = "live", think: str = "0s", seed: int = 0) -> SessionLoad:
    if history not in HISTORY_MODES:
        raise ConfigError(f"--history {history}: expected one of {', '.join(HISTORY_MODES)}")
    pause = think_time(think)  # checked here, before any load
    return SessionLoad(source, load_sessions(source), history, think, seed, pause)


def load_sessions(source: str) -> tuple[Session, ...]:
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"--sessions {source}: no such file")
    try:
        text = path.read_text("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: not UTF-8 text") from None
    sessions = []
    for index, (_, where, entry) in enumerate(jsonl_objects(text, source, "a 'turns' list")):
        turns = entry.get("turns")
        if not isinstance(turns, list) or not turns:
            raise ConfigError(f"{where}: field 'turns' is {_shown(turns)}; expected a list of at least one turn")
        session_id = entry.get("id", f"session-{index + 1}")
        if not isinstance(session_id, (str, int)) or isinstance(session_id, bool):
            raise ConfigError(f"{where}: field 'id' is {_shown(session_id)}; expected a string")
        sessions.append(Session(str(session_id), tuple(_turn(turn, f"{where}: turn {n}")
                                                       for n, turn in enumerate(turns, 1))))  # fmt: skip
    if not sessions:
        raise ConfigError(f"{source}: no sessions")
    return tuple(sessions)


def _turn(turn: object, where: str) -> Turn:
    if not isinstance(turn, dict):
        raise ConfigError(f"{where}: {_shown(turn)}; expected an object with 'user' or 'messages'")
    unknown = set(turn) - {"user", "messages", "assistant", "max_tokens", "think_s"}
    if unknown:
        raise ConfigError(f"{where}: unknown field {sorted(unknown)[0]!r}; expected user or messages, assistant, "
                          "max_tokens, think_s")  # fmt: skip
    user, messages = turn.get("user"), turn.get("messages")
    if (user is None) == (messages is None):
        raise ConfigError(f"{where}: expected 'user' (a text) or 'messages' (a list), one of the two")
    if user is not None:
        if not isinstance(user, str) or not user:
            raise ConfigError(f"{where}: field 'user' is {_shown(user)}; expected a text")
        added: tuple[dict[str, str], ...] = ({"role": "user", "content": user},)
    else:
        if not isinstance(messages, list) or not messages:
            raise ConfigError(f"{where}: field 'messages' is {_shown(messages)}; expected a list of messages")
        added = tuple(_message(message, where) for message in messages)
    assistant = turn.get("assistant")
    if assistant is not None and not isinstance(assistant, str):
        raise ConfigError(f"{where}: field 'assistant' is {_shown(assistant)}; expected a text")
    max_tokens = turn.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1):
        raise ConfigError(f"{where}: field 'max_tokens' is {_shown(max_tokens)}; expected a whole number >= 1")
    think = turn.get("think_s")
    if think is not None and (isinstance(think, bool) or not isinstance(think, (int, float)) or not 0 <= think < 1e6):
        raise ConfigError(f"{where}: field 'think_s' is {_shown(think)}; expected seconds >= 0")
    return Turn(added, assistant, max_tokens, float(think) if think is not None else None)


def _message(message: object, where: str) -> dict[str, str]:
    if not isinstance(message, dict) or message.get("role") not in ROLES or not isinstance(message.get("content"), str):
        raise ConfigError(f"{where}: message {_shown(message)}; expected {{'role': one of {', '.join(ROLES)}, "
                          "'content': a text}")  # fmt: skip
    return {"role": message["role"], "content": message["content"]}


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
