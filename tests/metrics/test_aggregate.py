import dataclasses

import pytest

from loadgen.config import LoadConfig, LoadMode, SloTarget
from loadgen.engine.monitor import ClientReport
from loadgen.errors import ErrorKind
from loadgen.metrics.aggregate import Aggregator
from loadgen.metrics.results import RunSummary
from loadgen.metrics.summary import RunInfo, build_summary
from loadgen.records import TokenMethod
from tests.records import MS, record


def summarize(aggregator: Aggregator) -> dict:
    return build_summary(aggregator, _info()).to_json()  # as summary.json has it


def _info() -> RunInfo:
    return RunInfo(
        endpoint="http://127.0.0.1:1",
        api="openai-chat",
        model="m",
        load=LoadConfig(requests=3),
        stream=True,
        started_at="t0",
        ended_at="t1",
        partial=False,
        stop_reason="completed",
        client=ClientReport(10.0, 20.0, False, 1000),
        slo=(SloTarget("ttft", 60 * MS),),
        tokenizer=None,
        listener_failures={},
    )


def test_summary_math_on_hand_computed_requests() -> None:
    aggregator = Aggregator(slo=(SloTarget("ttft", 60 * MS),))
    aggregator.on_record(record(intended_ms=-500, chunks_ms=(-450,), warmup=True))
    # two good requests: 0..1000 ms and 500..1500 ms, 4 tokens each
    aggregator.on_record(record(intended_ms=0, chunks_ms=(50, 100, 150, 200), end_ms=1000, index=1))
    aggregator.on_record(record(intended_ms=500, chunks_ms=(600, 700, 800, 900), end_ms=1500, index=2))
    # a failure from 1000 to 2000 ms
    aggregator.on_record(record(intended_ms=1000, end_ms=2000, error=ErrorKind.HTTP_5XX, index=3))
    aggregator.on_record(record(intended_ms=1900, end_ms=2000, error=ErrorKind.CANCELLED, index=4))
    summary = summarize(aggregator)

    assert summary["measured_window_s"] == pytest.approx(2.0)
    assert summary["requests"]["completed"] == 2
    assert summary["requests"]["failed"] == 1
    assert summary["requests"]["errors_by_kind"] == {"http_5xx": 1}
    assert summary["requests"]["warmup_excluded"] == 1
    assert summary["requests"]["cancelled_at_end"] == 1
    assert summary["requests"]["error_rate"] == pytest.approx(1 / 3)
    assert summary["throughput"]["requests_per_s"] == pytest.approx(1.0)
    assert summary["throughput"]["output_tokens_per_s"] == pytest.approx(4.0)
    assert summary["throughput"]["input_tokens_per_s"] == pytest.approx(10.0)
    ttft = summary["latency_ms"]["ttft"]
    assert ttft["count"] == 2
    assert ttft["min"] == pytest.approx(50, rel=1e-3)
    assert ttft["max"] == pytest.approx(100, rel=1e-3)
    assert summary["latency_ms"]["itl"]["count"] == 6
    assert summary["latency_ms"]["tpot"]["max"] == pytest.approx((1000 - 50) / 3, rel=1e-3)
    assert summary["latency_ms"]["tpot"]["min"] == pytest.approx((1500 - 600) / 3, rel=1e-3)
    assert summary["goodput"]["good_requests"] == 1  # second request's TTFT is 100 ms > 60 ms
    assert summary["goodput"]["fraction"] == pytest.approx(1 / 3)
    assert summary["token_counting"]["output_method"] == "server_usage"
    assert summary["schema_version"] == 2


def test_method_comparison_reports_difference() -> None:
    aggregator = Aggregator()
    aggregator.on_record(record(chunks_ms=(10, 20, 30), output_tokens=4, usage=4))
    comparison = summarize(aggregator)["token_counting"]["comparisons"]["content_chunks_vs_server_usage"]
    assert comparison == {
        "requests": 1,
        "server_usage_tokens": 4,
        "content_chunks_tokens": 3,
        "difference_percent": -25.0,
    }


def test_interval_histograms_are_flushed_to_the_sink_and_totals() -> None:
    seen = []
    aggregator = Aggregator(
        interval_ns=1000 * MS, on_interval=lambda start, end, h: seen.append((start, h["ttft"].count))
    )
    aggregator.on_record(record(intended_ms=0, chunks_ms=(10,), end_ms=500))
    aggregator.on_record(record(intended_ms=900, chunks_ms=(1000,), end_ms=1500))
    aggregator.on_record(record(intended_ms=2000, chunks_ms=(2010,), end_ms=2500))
    aggregator.flush()
    assert seen == [(0, 1), (1000 * MS, 1), (2000 * MS, 1)]
    assert aggregator.totals["ttft"].count == 3


def test_content_chunk_counting_is_named() -> None:
    aggregator = Aggregator()
    aggregator.on_record(record(chunks_ms=(10, 20), method=TokenMethod.CONTENT_CHUNKS, input_tokens=None))
    summary = summarize(aggregator)
    assert summary["token_counting"]["output_method"] == "content_chunks"
    assert summary["token_counting"]["input_method"] == "unavailable"
    assert summary["throughput"]["input_tokens_per_s"] is None


def _with_read_lag(read_lag_ms: float, index: int) -> object:
    import dataclasses

    base = record(intended_ms=0, sent_ms=0.2, chunks_ms=(50, 60), end_ms=60, index=index)
    return dataclasses.replace(base, read_lag_ns=round(read_lag_ms * MS))


def test_summary_names_the_stamp_source_and_carries_send_and_read_lag() -> None:
    from loadgen.metrics.summary import client_lag_warnings
    from loadgen.transport.base import TransportReport
    from loadgen.transport.stamps import StampSource

    def summary_for(read_lag_ms: float, source: StampSource, chunks_ms: tuple[float, ...] | None = None) -> dict:
        aggregator = Aggregator()
        for index in range(20):
            record = _with_read_lag(read_lag_ms, index)
            if chunks_ms is not None:
                record = dataclasses.replace(record, chunk_ns=[round(c * MS) for c in chunks_ms])
            aggregator.on_record(record)  # type: ignore[arg-type]
        info = RunInfo(
            endpoint="e", api="openai-chat", model="m", load=LoadConfig(requests=20), stream=True, started_at="t0",
            ended_at="t1", partial=False, stop_reason="completed", client=ClientReport(10.0, 20.0, False, 1000),
            slo=(), tokenizer=None, listener_failures={},
            transport=TransportReport(stamp_source=source.value, connections_opened=5, connections_before_load=4),
        )  # fmt: skip
        return build_summary(aggregator, info).to_json()

    quiet = summary_for(0.05, StampSource.KERNEL)
    assert quiet["clock"]["stamp_source"] == StampSource.KERNEL.value
    assert quiet["clock"]["sent_stamp"] == "when the request's last byte entered the kernel"
    assert quiet["client"]["send_lag_ms"]["p50"] == pytest.approx(0.2, rel=1e-2)
    assert quiet["client"]["read_lag_ms"]["p99"] == pytest.approx(0.05, rel=1e-2)
    assert quiet["client"]["connections"]["reconnects"] == 1
    assert not quiet["client"]["saturated"] and client_lag_warnings(RunSummary.from_json(quiet)) == []
    # 3 ms late reads: said in the console; with kernel stamps the figures stay valid
    late = summary_for(3.0, StampSource.KERNEL)
    assert late["client"]["read_lag_high"] and not late["client"]["saturated"]
    warning = client_lag_warnings(RunSummary.from_json(late))[0]
    assert "read lag p99 3.00 ms" in warning.text and "stay true" in warning.text
    assert warning.brief.startswith("read lag p99 3.00 ms") and "stay true" not in warning.brief
    # without kernel stamps the same lag is in every chunk time: the run is saturated
    user = summary_for(3.0, StampSource.USER)
    assert user["client"]["saturated"]
    assert "include this delay" in client_lag_warnings(RunSummary.from_json(user))[0].text
    # 20 ms late, kernel-stamped: saturated only once a stream's chunks piled up into one read
    spread = summary_for(20.0, StampSource.KERNEL)
    assert spread["client"]["coalesced_chunk_share"] == 0.0 and not spread["client"]["saturated"]
    piled = summary_for(20.0, StampSource.KERNEL, chunks_ms=(50, 60, 60, 60))
    assert piled["client"]["coalesced_chunk_share"] == pytest.approx(2 / 3, abs=1e-4) and piled["client"]["saturated"]


def test_cached_prompt_tokens_are_summed_when_the_server_reports_them() -> None:
    import dataclasses

    from loadgen.metrics.aggregate import Aggregator
    from tests.records import record

    aggregator = Aggregator()
    for cached in (140, 150, None):
        aggregator.on_record(dataclasses.replace(record(chunks_ms=(10, 20), end_ms=21), cached_input_tokens=cached))
    assert (aggregator.cached_input_tokens, aggregator.cached_input_known) == (290, 2)


def test_the_offered_rate_is_measured_from_when_requests_were_due() -> None:
    """An open-loop level at 16 req/s whose Poisson draw brought 13.65/s said 16.00: now the rate
    the requests were due at (warm-up out, a request cancelled at the end in) beside the setting."""
    aggregator = Aggregator(())
    aggregator.on_record(record(intended_ms=-50, sent_ms=-50, chunks_ms=(-40,), end_ms=-30, warmup=True))
    for intended in (0, 100, 250):
        aggregator.on_record(record(intended_ms=intended, sent_ms=intended, chunks_ms=(intended + 10,),
                                    end_ms=intended + 20, output_tokens=1))  # fmt: skip
    aggregator.on_record(record(intended_ms=400, sent_ms=400, error=ErrorKind.CANCELLED))
    assert aggregator.arrivals == 4
    assert aggregator.arrivals_per_s == pytest.approx(3 / 0.4)
    info = dataclasses.replace(_info(), load=LoadConfig(mode=LoadMode.OPEN, rate_rps=16.0, requests=4))
    throughput = build_summary(aggregator, info).throughput
    assert (throughput.offered_requests_per_s, throughput.arrived_requests_per_s) == (16.0, 7.5)


def test_a_lag_is_explained_once_a_command_and_its_figures_given_at_every_level() -> None:
    from loadgen.run.collect import lag_lines

    def level(read_p99: float, send_p99: float = 0.1, saturated: bool = False) -> RunSummary:
        client = {
            "read_lag_high": True,
            "read_lag_ms": {"count": 50, "p99": read_p99, "max": read_p99},
            "schedule_lag_saturated": saturated,
            "saturated": saturated,
            "send_lag_ms": {"p99": send_p99},
        }
        return RunSummary.from_json({"client": client, "clock": {"stamp_source": "kernel"}})  # fmt: skip

    explained: set[str] = set()
    first, later = lag_lines(level(6.0), explained), lag_lines(level(9.0), explained)
    assert len(first) == 1 and first[0].startswith("read lag p99 6.00 ms (max 6.00 ms) is over 1 ms: loadgen read")
    assert later == ["read lag p99 9.00 ms (max 9.00 ms), over 1 ms (see above)"]
    # a send lag that makes the level INVALID is said by its verdict, not a second time here
    assert lag_lines(level(9.0, send_p99=30.0, saturated=True), explained) == [later[0]]
