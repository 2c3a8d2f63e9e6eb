import pytest

from loadgen.config import LoadConfig, LoadMode, Stage
from loadgen.engine.arrivals import stage_target, staged_arrival_offsets_ns
from loadgen.prompts import Prompt
from loadgen.prompts.trace import TraceEntry
from tests.engine.conftest import PROMPTS, make_context, sse_stream

MS = 1_000_000
RAMP = (Stage(10.0, 20.0), Stage(10.0, 20.0), Stage(5.0, 0.0))


def test_stage_targets_ramp_linearly_from_the_previous_target() -> None:
    assert stage_target(RAMP, 0.0) == 0.0
    assert stage_target(RAMP, 5.0) == 10.0
    assert stage_target(RAMP, 15.0) == 20.0
    assert stage_target(RAMP, 22.5) == 10.0
    assert stage_target(RAMP, 30.0) == 0.0


def test_staged_arrivals_follow_the_rate() -> None:
    offsets = list(staged_arrival_offsets_ns(RAMP, seed=5))
    # expected count: the integral of the rate, 10·20/2 + 10·20 + 5·20/2 = 350
    assert len(offsets) == pytest.approx(350, rel=0.15)
    first_ramp = sum(1 for t in offsets if t < 10_000 * MS)
    assert first_ramp == pytest.approx(100, rel=0.3)
    assert offsets == sorted(offsets) and offsets[-1] < 25_000 * MS


def run(load: LoadConfig, trace=None):  # type: ignore[no-untyped-def]
    import asyncio

    from loadgen.engine.runner import LoadRunner
    from loadgen.prompts import PromptPicker

    records = []
    context = make_context(lambda request: sse_stream(0.02, 0.0, 1))

    async def main():  # type: ignore[no-untyped-def]
        runner = LoadRunner(load, context, PromptPicker(PROMPTS, 0), records.append, asyncio.Event(), trace)
        return await runner.run()

    asyncio.run(main())
    return records


def in_flight_at(records, t_ns: int) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for r in records if r.sent_ns <= t_ns < r.end_ns)


def most_in_flight(records, start_ns: int, end_ns: int) -> int:  # type: ignore[no-untyped-def]
    """The most requests in flight at any send time within [start, end)."""
    return max((in_flight_at(records, r.sent_ns) for r in records if start_ns <= r.sent_ns < end_ns), default=0)


def test_closed_loop_stages_add_and_retire_users() -> None:
    stages = (Stage(0.3, 6.0), Stage(0.4, 6.0), Stage(0.01, 2.0), Stage(0.4, 2.0))
    records = run(LoadConfig(mode=LoadMode.CLOSED, concurrency=6, stages=stages))
    # the most requests in flight at once while each stage held (not at one instant: between two
    # requests a user has none in flight, and a busy machine widens that gap)
    assert most_in_flight(records, 400 * MS, 700 * MS) == 6
    assert most_in_flight(records, 900 * MS, 1100 * MS) == 2
    assert max(in_flight_at(records, r.sent_ns) for r in records) <= 6


def test_trace_replay_uses_the_trace_times_and_prompts() -> None:
    trace = [TraceEntry(0, Prompt("a", text="x")), TraceEntry(50 * MS, Prompt("b", text="y")),
             TraceEntry(120 * MS, Prompt("c", text="z"))]  # fmt: skip
    records = sorted(run(LoadConfig(mode=LoadMode.OPEN), trace), key=lambda r: r.intended_ns)
    assert [r.prompt_id for r in records] == ["a", "b", "c"]
    gaps = [records[i + 1].intended_ns - records[i].intended_ns for i in range(2)]
    assert gaps == [50 * MS, 70 * MS]
