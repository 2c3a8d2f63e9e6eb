"""Multi-turn sessions: the file, its errors, and the load they make (each turn sends the whole
history; the server's own count of every turn's prompt is the fact checked)."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest

from loadgen.cli import main
from loadgen.errors import ConfigError
from loadgen.prompts.sessions import load_sessions
from tests.conftest import SimFactory
from tests.reliability.hostile import hostile_server, stream

EXAMPLE = Path(__file__).resolve().parents[2] / "scenarios" / "sessions-example.jsonl"


def write(tmp_path: Path, sessions: list[object]) -> str:
    path = tmp_path / "sessions.jsonl"
    path.write_text("".join(json.dumps(session) + "\n" for session in sessions))
    return str(path)


def test_the_example_file_loads() -> None:
    sessions = load_sessions(str(EXAMPLE))
    assert len(sessions) == 4 and [len(s.turns) for s in sessions] == [4, 3, 5, 2]
    first = sessions[0].prompt(0, (), "support-order/1")
    assert [m["role"] for m in first.as_messages()] == ["system", "user"] and first.turn == 1


@pytest.mark.parametrize(
    "session, message",
    [
        ({"id": "a", "turns": []}, "field 'turns' is []; expected a list of at least one turn"),
        ({"id": "a"}, "field 'turns' is None"),
        ({"turns": [{"user": "x", "messages": []}]}, "turn 1: expected 'user' (a text) or 'messages'"),
        ({"turns": [{"user": "x", "voice": "y"}]}, "turn 1: unknown field 'voice'"),
        ({"turns": [{"messages": [{"role": "robot", "content": "x"}]}]}, "turn 1: message {'role': 'robot'"),
        ({"turns": [{"user": "x"}, {"user": "y", "think_s": -1}]}, "turn 2: field 'think_s' is -1"),
        ({"turns": [{"user": "x", "max_tokens": 0}]}, "field 'max_tokens' is 0"),
    ],
)
def test_bad_sessions_are_one_line(tmp_path: Path, session: object, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_sessions(write(tmp_path, [session]))


SESSIONS = [
    {"id": "a", "turns": [{"user": "one two three", "max_tokens": 4},
                          {"user": "four five", "assistant": "r e c", "max_tokens": 4},
                          {"user": "six", "max_tokens": 4}]},
    {"id": "b", "turns": [{"user": "alpha beta", "max_tokens": 4}, {"user": "gamma", "assistant": "x", "max_tokens": 4},
                          {"user": "delta epsilon zeta", "max_tokens": 4}]},
]  # fmt: skip


def expected_prompt_words(session: dict, turn: int, history: str) -> int:
    """What the simulator counts (one word a token): every earlier turn's user words and reply, then this one's."""
    words = 0
    for earlier in session["turns"][: turn - 1]:
        reply = earlier.get("assistant") if history == "recorded" and earlier.get("assistant") else None
        words += len(earlier["user"].split()) + (len(reply.split()) if reply else earlier["max_tokens"])
    return words + len(session["turns"][turn - 1]["user"].split())


@pytest.mark.parametrize("history", ["live", "recorded"])
def test_each_turn_sends_the_whole_history(start_sim: SimFactory, tmp_path: Path, history: str) -> None:
    sim = start_sim("fixed:5,1")
    output = tmp_path / "run"
    assert main(["run", "--quiet", "--endpoint", sim.url, "--sessions", write(tmp_path, SESSIONS), "--history", history,
                 "--concurrency", "2", "--requests", "12", "--warmup", "0", "--output", str(output)]) == 0  # fmt: skip
    records = [json.loads(line) for line in (output / "requests.jsonl").read_text().splitlines()]
    assert len(records) == 12 and {r["turn"] for r in records} == {1, 2, 3}
    by_instance: dict[str, list[dict]] = {}
    for record in sorted(records, key=lambda r: r["intended_ns"]):
        by_instance.setdefault(record["session"], []).append(record)
    for instance, turns in by_instance.items():
        session = next(s for s in SESSIONS if instance.startswith(s["id"] + "/"))
        assert [r["turn"] for r in turns] == list(range(1, len(turns) + 1))  # in order, one at a time
        for record in turns:  # the server's own count of the prompt it was sent
            assert record["input_tokens"] == expected_prompt_words(session, record["turn"], history), record
        for earlier, later in itertools.pairwise(turns):
            assert later["intended_ns"] >= earlier["end_ns"]  # the next turn waits for the answer
    summary = json.loads((output / "summary.json").read_text())
    turns = summary["turns"]
    assert [t["turn"] for t in turns] == [1, 2, 3] and sum(t["requests"] for t in turns) == 12
    assert turns[0]["input_tokens_mean"] < turns[1]["input_tokens_mean"] < turns[2]["input_tokens_mean"]
    assert main(["report", str(output), "--output", str(tmp_path / "report.html")]) == 0
    page = (tmp_path / "report.html").read_text()
    assert "by turn (sessions)" in page and "TTFT by turn" in page  # the table and its chart


def test_a_session_header_carries_each_sessions_id(tmp_path: Path) -> None:
    with hostile_server(stream) as server:
        assert main(["run", "--quiet", "--endpoint", server.url, "--api", "openai-completions", "--model", "m",
                     "--sessions", write(tmp_path, SESSIONS), "--session-header", "X-Session-ID",
                     "--concurrency", "1", "--requests", "6", "--warmup", "0",
                     "--output", str(tmp_path / "run")]) == 0  # fmt: skip
        ids = [seen.headers.get("x-session-id") for seen in server.generation_requests()]
    assert ids[1:] == ["a/1", "a/1", "a/1", "b/2", "b/2", "b/2"]  # after the preflight: one id per session run


def test_sessions_bring_their_own_prompts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--sessions", write(tmp_path, SESSIONS), "--synthetic", "input=8", "--requests", "4"]) == 2
    assert "--sessions bring their own prompts" in capsys.readouterr().err
    assert main(["run", "--session-header", "X-Session-ID", "--requests", "4"]) == 2


def test_in_open_loop_sessions_arrive_at_the_rate(start_sim: SimFactory, tmp_path: Path) -> None:
    """Sessions, not requests, arrive (Poisson, seeded); each runs its turns one after another."""
    sim = start_sim("fixed:5,1")
    output = tmp_path / "run"
    assert main(["run", "--quiet", "--endpoint", sim.url, "--sessions", write(tmp_path, SESSIONS), "--rate", "20",
                 "--requests", "12", "--warmup", "0", "--output", str(output)]) == 0  # fmt: skip
    records = [json.loads(line) for line in (output / "requests.jsonl").read_text().splitlines()]
    assert len(records) >= 12  # turns of sessions that arrived before the count ran out also finish or cancel
    instances = {r["session"] for r in records}
    assert sum(1 for r in records if r["turn"] == 1) == len(instances) >= 4  # every session started by an arrival
    for instance in instances:
        turns = sorted((r for r in records if r["session"] == instance), key=lambda r: r["intended_ns"])
        assert [r["turn"] for r in turns] == list(range(1, len(turns) + 1))
        for earlier, later in itertools.pairwise(turns):
            assert later["intended_ns"] >= earlier["end_ns"]  # a later turn waits for the answer


def test_sessions_split_over_worker_processes_merge_by_turn(start_sim: SimFactory, tmp_path: Path) -> None:
    sim = start_sim("fixed:5,1")
    output = tmp_path / "run"
    assert main(["run", "--quiet", "--endpoint", sim.url, "--sessions", write(tmp_path, SESSIONS), "--workers", "2",
                 "--concurrency", "2", "--requests", "12", "--warmup", "0", "--output", str(output)]) == 0  # fmt: skip
    records = [json.loads(line) for line in (output / "requests.jsonl").read_text().splitlines()]
    summary = json.loads((output / "summary.json").read_text())
    by_turn = {turn: sum(1 for r in records if r["turn"] == turn) for turn in (1, 2, 3)}
    assert {t["turn"]: t["requests"] for t in summary["turns"]} == by_turn and sum(by_turn.values()) == 12
    assert sum(t["ttft_ms"]["count"] for t in summary["turns"]) == 12
    instances = {r["session"] for r in records}
    assert {"a/1", "b/2"} <= instances  # the two workers ran the file's sessions in turn, not the same one twice


@pytest.mark.parametrize("think, gaps", [("0.2s", "fixed"), ("exp:50ms", "drawn"), ("uniform:10ms-30ms", "drawn")])
def test_think_time_is_added_to_when_the_next_turn_is_due(start_sim: SimFactory, tmp_path: Path, think: str,
                                                          gaps: str) -> None:  # fmt: skip
    """A turn is due when the previous answer ended plus the think time: a recorded fact (the
    intended time is computed, not measured), drawn with the run's seed for a distribution."""
    sim = start_sim("fixed:5,1")

    def due_gaps(name: str) -> list[int]:
        output = tmp_path / name
        assert main(["run", "--quiet", "--endpoint", sim.url, "--sessions", write(tmp_path, SESSIONS),
                     "--think-time", think, "--concurrency", "1", "--requests", "6", "--warmup", "0",
                     "--output", str(output)]) == 0  # fmt: skip
        records = sorted((json.loads(line) for line in (output / "requests.jsonl").read_text().splitlines()),
                         key=lambda r: r["intended_ns"])  # fmt: skip
        return [later["intended_ns"] - earlier["end_ns"] for earlier, later in itertools.pairwise(records)
                if later["turn"] > 1]  # fmt: skip

    first = due_gaps("one")
    assert len(first) == 4
    if gaps == "fixed":
        assert first == [200_000_000] * 4
    else:
        assert len(set(first)) == 4 and all(gap > 0 for gap in first)
        assert due_gaps("two") == first  # the same seed draws the same think times


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sessions", "{sessions}"], "sessions.jsonl:1: field 'turns' is []"),
        (["--trace", "{trace}"], "trace.jsonl:2: timestamp 1 s is before the entry above it"),
        (["--trace", "{csv}"], "trace.csv:1: columns when, tokens are neither the Azure trace's"),
        (["--sessions", "{good}", "--think-time", "soon"], "--think-time soon: expected a duration"),
    ],
)
def test_bad_traffic_files_are_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   args: list[str], message: str) -> None:  # fmt: skip
    files = {"sessions": tmp_path / "sessions.jsonl", "trace": tmp_path / "trace.jsonl", "csv": tmp_path / "trace.csv",
             "good": tmp_path / "good.jsonl"}  # fmt: skip
    files["sessions"].write_text('{"id": "a", "turns": []}\n')
    files["trace"].write_text('{"timestamp": 2, "prompt": "a"}\n{"timestamp": 1, "prompt": "b"}\n')
    files["csv"].write_text("when,tokens\n1,2\n")
    files["good"].write_text(json.dumps(SESSIONS[0]) + "\n")
    argv = [arg.format(**{name: str(path) for name, path in files.items()}) for arg in args]
    assert main(["run", *argv, "--requests", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
