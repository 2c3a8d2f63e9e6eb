"""Telemetry through the command line: a sidecar beside a run, and a monitor on another 'host'."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from loadgen.cli import main
from tests.conftest import SimFactory


def test_run_with_telemetry_records_aligned_series(
    start_sim: SimFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = start_sim("llama2-7b-h100")
    output = tmp_path / "out"
    code = main(["sweep", "--quiet", "--endpoint", sim.url, "--concurrency", "2,8", "--requests", "16",
                 "--max-tokens", "48", "--telemetry", "gpu,host,server", "--telemetry-interval", "100ms",
                 "--output", str(output)])  # fmt: skip
    shown = capsys.readouterr().out
    assert code == 0
    assert "telemetry: gpu not available" in shown.replace("\n", " ")  # no GPU here: said once, run goes on
    assert "telemetry per level" in shown
    levels = json.loads((output / "sweep.json").read_text())["levels"]
    samples = [json.loads(line) for line in (output / "telemetry.jsonl").read_text().splitlines()]
    assert {sample["source"] for sample in samples} == {"host", "process", "server"}
    for level in levels:
        telemetry = level["telemetry"]
        start = level["clock"]["monotonic_start_ns"]
        in_window = [s for s in samples if start <= s["t_ns"]]
        assert in_window, "samples share the records' clock"
        server = telemetry["server"]
        assert 1 <= server["requests_running"]["max"] <= level["load"]["concurrency"]
        assert server["kv_cache_usage_percent"]["max"] > 0
        assert telemetry["process"]["cpu_percent"]["mean"] > 0
        assert telemetry["sampler"]["unavailable"]["gpu"].startswith("NVML cannot start")
        assert telemetry["sampler"]["sidecar_cpu_percent_of_core"] < 50
    assert levels[1]["telemetry"]["server"]["requests_running"]["max"] > levels[0]["telemetry"]["server"][
        "requests_running"]["max"]  # fmt: skip


def test_monitor_serves_telemetry_to_a_run(start_sim: SimFactory, tmp_path: Path) -> None:
    monitor = subprocess.Popen(
        [sys.executable, "-m", "loadgen", "monitor", "--listen", "127.0.0.1:0", "--telemetry", "host",
         "--interval", "100ms"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    try:
        assert monitor.stdout is not None
        readable, _, _ = select.select([monitor.stdout], [], [], 30)
        line = monitor.stdout.readline() if readable else ""
        assert "loadgen monitor on http://127.0.0.1:" in line, line
        url = line.split(" on ")[1].split()[0]
        sim = start_sim("fixed:5,2")
        output = tmp_path / "out"
        code = main(["run", "--quiet", "--endpoint", sim.url, "--requests", "6", "--max-tokens", "40",
                     "--telemetry-url", url, "--telemetry-interval", "100ms", "--output", str(output)])  # fmt: skip
        assert code == 0
        telemetry = json.loads((output / "summary.json").read_text())["telemetry"]
        remote = telemetry["sampler"]["remote"]
        assert remote["url"] == url
        assert abs(remote["clock_offset_ns"]) < 50_000_000  # same host: offset near zero
        assert telemetry["host"]["cpu_percent"]["mean"] is not None
    finally:
        monitor.send_signal(signal.SIGINT)
        monitor.communicate(timeout=15)
    assert monitor.returncode == 0


def test_bad_telemetry_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--telemetry", "gpu,tpu"]) == 2
    assert "unknown telemetry source 'tpu'" in capsys.readouterr().err
    assert main(["monitor", "--listen", "nowhere"]) == 2
    assert "expected HOST:PORT" in capsys.readouterr().err


def test_energy_per_token_end_to_end_with_a_gpu_that_reports_energy(
    start_sim: SimFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = Path(__file__).parent / "fake_pynvml"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(fake), os.environ.get("PYTHONPATH", "")]))
    sim = start_sim("fixed:5,2")
    output = tmp_path / "out"
    code = main(["run", "--quiet", "--endpoint", sim.url, "--requests", "8", "--concurrency", "2",
                 "--max-tokens", "100", "--telemetry", "gpu", "--telemetry-interval", "100ms",
                 "--output", str(output)])  # fmt: skip
    assert code == 0
    summary = json.loads((output / "summary.json").read_text())
    telemetry = summary["telemetry"]
    assert telemetry["gpu"]["0"]["power_w"]["mean"] == 350.0
    assert telemetry["energy_method"] == "energy_counter"
    # the window only: the counter's rise from the window's first sample to its last (as recorded in
    # telemetry.jsonl), scaled from their span to the whole window; not the run's, nor a clock's guess
    origin = summary["clock"]["monotonic_start_ns"]
    start_ns, end_ns = (origin + edge for edge in summary["clock"]["window_ns"])
    samples = [json.loads(line) for line in (output / "telemetry.jsonl").read_text().splitlines()]
    inside = [s for s in samples if s.get("energy_j") is not None and start_ns <= s["t_ns"] <= end_ns]
    assert len(inside) >= 2
    rise_j = inside[-1]["energy_j"] - inside[0]["energy_j"]
    span_s = (inside[-1]["t_ns"] - inside[0]["t_ns"]) / 1e9
    assert telemetry["energy_j"] == pytest.approx(rise_j * summary["measured_window_s"] / span_s, abs=2e-3)
    tokens = summary["tokens"]["output_total"]
    assert telemetry["joules_per_output_token"] == pytest.approx(telemetry["energy_j"] / tokens, abs=1e-6)  # 6 decimals
