import time
import urllib.request
from collections.abc import Iterator

import pytest

from loadgen.telemetry.model import Sample
from loadgen.telemetry.remote import RemoteSource, SampleBuffer, monitor_app, prometheus_text
from loadgen.telemetry.sampler import Sampler
from tests.threaded_server import serve_in_thread

REMOTE_AHEAD_NS = 5_000_000_000  # the "remote" host's monotonic clock runs 5 s ahead of ours


@pytest.fixture
def monitor() -> Iterator[tuple[str, SampleBuffer]]:
    buffer = SampleBuffer()
    sampler = Sampler([], interval_s=1)
    app = monitor_app(sampler, buffer, clock=lambda: time.perf_counter_ns() + REMOTE_AHEAD_NS)
    with serve_in_thread(app) as url:
        yield url, buffer


def test_clock_offset_and_samples_moved_onto_the_local_clock(monitor: tuple[str, SampleBuffer]) -> None:
    url, buffer = monitor
    source = RemoteSource(url)
    source.open()
    # within the uncertainty it reports (half the round trip, however long a busy machine makes it)
    assert source.offset_ns == pytest.approx(REMOTE_AHEAD_NS, abs=source.uncertainty_ns + 1_000)
    assert 0 < source.uncertainty_ns < 1_000_000_000
    remote_now = time.perf_counter_ns() + REMOTE_AHEAD_NS
    buffer.add(Sample(remote_now, "gpu", "0", {"power_w": 300.0}))
    buffer.add(Sample(remote_now + 1, "gpu", "1", {"power_w": 200.0}))
    samples = source.read(0)
    assert [s.device for s in samples] == ["0", "1"]
    assert abs(samples[0].t_ns - (remote_now - REMOTE_AHEAD_NS)) <= source.uncertainty_ns + 1_000
    assert source.read(0) == []  # only new samples each poll
    buffer.add(Sample(remote_now + 2, "host", "", {"cpu_percent": 5.0}))
    assert [s.source for s in source.read(0)] == ["host"]


def test_prometheus_exposition_of_latest_values(monitor: tuple[str, SampleBuffer]) -> None:
    url, buffer = monitor
    buffer.add(Sample(1, "gpu", "0", {"power_w": 300.0, "gpu_util_percent": 90.0}))
    buffer.add(Sample(2, "gpu", "0", {"power_w": 310.0, "gpu_util_percent": 95.0}))
    text = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
    assert 'loadgen_gpu_power_w{device="0"} 310.0' in text
    assert "# TYPE loadgen_gpu_gpu_util_percent gauge" in text
    assert prometheus_text([]) == ""


def test_bad_query_and_unreachable_monitor(monitor: tuple[str, SampleBuffer]) -> None:
    url, _ = monitor
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(url + "/samples?after=x", timeout=5)
    from loadgen.telemetry.model import SourceUnavailable
    from tests.conftest import free_port

    with pytest.raises(SourceUnavailable, match="cannot reach loadgen monitor"):
        RemoteSource(f"http://127.0.0.1:{free_port()}").open()
