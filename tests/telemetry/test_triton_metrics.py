"""Triton's per-model counters reduced to a level's server figures."""

from __future__ import annotations

import pytest

from loadgen.telemetry.triton import default_metrics_url, level_figures, levels_by_model, parse_triton_counters

SCRAPE = """# HELP nv_inference_request_success Number of successful inference requests, all batch sizes
# TYPE nv_inference_request_success counter
nv_inference_request_success{{model="llm",version="1"}} {success}
nv_inference_request_success{{model="idle",version="1"}} 5
# TYPE nv_inference_request_failure counter
nv_inference_request_failure{{model="llm",reason="BACKEND",version="1"}} {failed}
nv_inference_request_failure{{model="llm",reason="REJECTED",version="1"}} 0
# TYPE nv_inference_count counter
nv_inference_count{{model="llm",version="1"}} {success}
# TYPE nv_inference_exec_count counter
nv_inference_exec_count{{model="llm",version="1"}} {executions}
# TYPE nv_inference_queue_duration_us counter
nv_inference_queue_duration_us{{model="llm",version="1"}} {queue}
# TYPE nv_inference_compute_infer_duration_us counter
nv_inference_compute_infer_duration_us{{model="llm",version="1"}} {infer}
# TYPE nv_gpu_utilization gauge
nv_gpu_utilization{{gpu_uuid="GPU-1"}} 0.5
"""


def scrape(success: int, failed: int, executions: int, queue: int, infer: int) -> str:
    return SCRAPE.format(success=success, failed=failed, executions=executions, queue=queue, infer=infer)


def test_level_figures_from_two_scrapes() -> None:
    before = parse_triton_counters(scrape(10, 1, 10, 1_000, 50_000))
    after = parse_triton_counters(scrape(50, 3, 20, 81_000, 2_050_000))
    figures = levels_by_model(before, after)
    assert list(figures) == ["llm"]  # the idle model did nothing during the level
    llm = figures["llm"]
    assert llm["requests_succeeded"] == 40 and llm["requests_failed"] == 2
    assert llm["failed_by_reason"] == {"BACKEND": 2}
    assert llm["average_batch_size"] == 4.0
    assert llm["per_request_ms"]["queue"] == pytest.approx(80_000 / 42 / 1000, abs=1e-3)
    assert llm["per_request_ms"]["compute_infer"] == pytest.approx(2_000_000 / 42 / 1000, abs=1e-3)


def test_no_executions_means_no_batch_figure() -> None:
    counters = parse_triton_counters(scrape(10, 0, 10, 0, 0))
    assert "average_batch_size" not in level_figures(counters, counters)


def test_not_prometheus_text() -> None:
    with pytest.raises(ValueError):
        parse_triton_counters("nv_inference_count{model=llm 3\n")


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [("http://10.0.0.5:8000", "http://10.0.0.5:8002/metrics"), ("grpc://triton:8001", "http://triton:8002/metrics"),
     ("grpc://[::1]:8001", "http://[::1]:8002/metrics")],
)  # fmt: skip
def test_default_metrics_url(endpoint: str, expected: str) -> None:
    assert default_metrics_url(endpoint) == expected
