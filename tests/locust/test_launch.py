"""Locust mode against the simulator: headless, distributed (master + 2 workers on 127.0.0.1),
and the web UI driven in a real headless Chromium."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from loadgen.cli import main
from tests.browser import open_page
from tests.conftest import SimFactory, free_port

TTFT_MS, ITL_MS = 20.0, 5.0
SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_headless_run_writes_the_standard_results(start_sim: SimFactory, tmp_path: Path) -> None:
    sim = start_sim(f"fixed:{TTFT_MS:g},{ITL_MS:g}", keep_log=True)
    output = tmp_path / "headless"
    code = main(["locust", "--headless", "--users", "3", "--run-time", "6s", "--endpoint", sim.url,
                 "--max-tokens", "16", "--output", str(output)])  # fmt: skip
    assert code == 0
    summary = json.loads((output / "summary.json").read_text())
    done = records(output / "requests.jsonl")
    assert summary["requests"]["completed"] == len([r for r in done if r["error_kind"] is None]) > 10
    assert (summary["locust"]["processes"], summary["locust"]["users"]) == (1, 3)
    assert {"ttft.hlog", "itl.hlog", "e2e.hlog"} <= {p.name for p in output.iterdir()}
    ttft = summary["latency_ms"]["ttft"]
    assert ttft["min"] >= TTFT_MS * 0.999  # never faster than the server (within the histogram's precision)
    # the gaps Locust mode reports are the gaps the server made (its own log), not the profile's
    with urllib.request.urlopen(f"{sim.url}/sim/log", timeout=10) as response:
        served = [entry["chunk_ns"] for entry in json.loads(response.read()) if len(entry["chunk_ns"]) == 16]
    server_gaps_ms = [(b - a) / 1e6 for chunks in served for a, b in itertools.pairwise(chunks)]
    assert summary["latency_ms"]["itl"]["p50"] == pytest.approx(statistics.median(server_gaps_ms), abs=1.0)
    assert summary["tokens"]["output_total"] == 16 * summary["requests"]["completed"]


def test_headless_run_with_the_telemetry_sidecar(start_sim: SimFactory, tmp_path: Path) -> None:
    sim = start_sim("llama2-7b-h100")  # a profile that serves vLLM-style metrics
    output = tmp_path / "telemetry"
    # the quick-start scenario is written for sweeps (concurrency 1..64): Locust takes its peak unless told
    code = main(["locust", str(SCENARIOS / "quickstart.yaml"), "--headless", "--users", "4", "--run-time", "2s",
                 "--endpoint", sim.url, "--max-tokens", "16", "--telemetry", "host,server",
                 "--telemetry-interval", "100ms", "--output", str(output)])  # fmt: skip
    assert code == 0
    summary = json.loads((output / "summary.json").read_text())
    assert summary["goodput"] is not None  # the scenario's SLOs came along
    telemetry = summary["telemetry"]
    assert telemetry["samples"] > 4
    assert 1 <= telemetry["server"]["requests_running"]["max"] <= 4
    assert telemetry["process"]["cpu_percent"]["max"] > 0  # the Locust process, not the launcher


def _loadgen(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "loadgen", "locust", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


def _stop(process: subprocess.Popen[bytes], timeout_s: float = 30) -> str:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
    return output.decode("utf-8", "replace")


def test_distributed_master_merges_the_workers_exactly(start_sim: SimFactory, tmp_path: Path) -> None:
    sim = start_sim(f"fixed:{TTFT_MS:g},{ITL_MS:g}")
    port = free_port()
    common = ["--endpoint", sim.url, "--max-tokens", "8"]
    master = _loadgen("--headless", "--master", "--master-bind-port", str(port), "--expect-workers", "2",
                      "--users", "4", "--run-time", "4s", "--output", str(tmp_path / "master"), *common)  # fmt: skip
    workers = [_loadgen("--worker", "--master-port", str(port), "--output", str(tmp_path / f"w{i}"), *common)
               for i in range(2)]  # fmt: skip
    try:
        master_output, _ = master.communicate(timeout=120)
    finally:
        logs = [_stop(worker) for worker in workers]
    assert master.returncode == 0, master_output.decode()[-2000:]
    summary = json.loads((tmp_path / "master" / "summary.json").read_text())
    worker_records = [records(path) for path in sorted(tmp_path.glob("w*/worker-*/requests.jsonl"))]
    assert len(worker_records) == 2, logs
    assert all(worker for worker in worker_records)  # both workers sent requests
    ok = [r for worker in worker_records for r in worker if r["error_kind"] is None]
    assert summary["requests"]["completed"] == len(ok)
    assert summary["latency_ms"]["ttft"]["count"] == len(ok)
    assert summary["latency_ms"]["itl"]["count"] == sum(len(r["chunk_ns"]) - 1 for r in ok)
    assert summary["tokens"]["output_total"] == sum(r["output_tokens"] for r in ok)
    assert summary["partial"] is False and summary["locust"]["processes"] == 2
    # the workers' interval logs (on their own disks), merged by the report, hold the same TTFT count
    report = tmp_path / "report.html"
    assert main(["report", "--merge", str(tmp_path / "master"), str(tmp_path / "w0"), str(tmp_path / "w1"),
                 "--output", str(report)]) == 0  # fmt: skip
    merged = report.read_text().split('id="merged-latency"')[1].split("</tr>")[1]
    assert f'<td class="">{len(ok)}</td>' in merged


def _wait_http(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer")


def test_web_ui_numbers_are_true_and_the_loadgen_charts_update(start_sim: SimFactory, tmp_path: Path) -> None:
    """In Chromium: the header RPS is the simulator's own request rate (one Locust request per LLM
    request), the Statistics table has one row per request type, and the loadgen tab's table and
    live charts show loadgen's figures and keep updating."""
    sim = start_sim(f"fixed:{TTFT_MS:g},{ITL_MS:g}", keep_log=True)
    port = free_port()
    ui = _loadgen("--web-port", str(port), "--users", "2", "--endpoint", sim.url, "--max-tokens", "16",
                  "--output", str(tmp_path / "ui"))  # fmt: skip
    screenshot = tmp_path / "locust-loadgen-tab.png"
    try:
        _wait_http(f"http://127.0.0.1:{port}/")
        seen = asyncio.run(_drive_ui(f"http://127.0.0.1:{port}/", sim.url, screenshot))
    except BaseException:
        print(_stop(ui)[-8000:])  # Locust's own output (a traceback behind a stuck state), shown with the failure
        raise
    log = _stop(ui)
    # Locust's current RPS averages the 10 whole seconds before the last 2: the simulator's log, the same span
    assert seen["header_rps"] == pytest.approx(seen["sim_rps"], rel=0.05), seen
    assert seen["statistics_rows"] == ["openai-chat", "Aggregated"], seen
    rows = {line.split("\t")[0]: line.split("\t")[1:] for line in seen["loadgen_table"].splitlines()}
    for metric in ("TTFT (ms)", "ITL (ms)", "TPOT (ms)", "End-to-end (ms)", "Output tokens/s per request (tok/s)"):
        assert metric in rows, seen["loadgen_table"]
    assert TTFT_MS <= float(rows["TTFT (ms)"][2]) <= TTFT_MS + 20  # p50
    assert seen["chart_points"][1] > seen["chart_points"][0] > 0, seen  # new points came in while we looked
    assert seen["rate_charts"] == [["output tok/s"], ["requests/s"]], seen
    assert seen["chart_traces"] >= 2 and seen["chart_ttft_p50"] == pytest.approx(TTFT_MS, abs=15), seen
    assert screenshot.stat().st_size > 10_000
    summary = json.loads((tmp_path / "ui" / "summary.json").read_text())  # written when the test stopped
    assert summary["requests"]["completed"] > 0, log[-2000:]


def button(pattern: str) -> str:
    """A JavaScript expression: the first button whose text matches the regular expression."""
    return f"Array.from(document.querySelectorAll('button')).find(b => {pattern}.test(b.innerText.trim()))"


def _sim_rate(sim_url: str, start_ns: int, end_ns: int) -> float:
    with urllib.request.urlopen(f"{sim_url}/sim/log", timeout=10) as response:
        log = json.loads(response.read())
    return sum(1 for entry in log if start_ns <= entry["received_ns"] < end_ns) / ((end_ns - start_ns) / 1e9)


SETTLED = "new Promise(done => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(done, 0))))"
HEADER_RPS = "parseFloat((document.body.innerText.match(/\\bRPS\\s+([0-9.]+)/) || [])[1])"
FRAME = "document.getElementById('loadgen-charts')"


async def _drive_ui(url: str, sim_url: str, screenshot: Path) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    async with open_page() as page:
        await page.send("Runtime.enable")
        await page.send("Network.enable")
        try:
            return await _drive(page, url, sim_url, screenshot, seen)
        finally:  # what the page asked for and what came back: the record behind a stuck page
            screenshot.with_name("page-events.json").write_text(json.dumps(page.events))


async def _drive(page: Any, url: str, sim_url: str, screenshot: Path, seen: dict[str, Any]) -> dict[str, Any]:
    await page.navigate(url)
    await page.wait_for(f"!!{button('/^start$/i')}", timeout_s=60)
    # Locust's page applies its first answer of the test's state ("ready") in an effect after the
    # answer arrives; a start clicked before then ran, but the late "ready" overwrote the page's
    # RUNNING and it stayed on the start form (a race in Locust's page, seen when the click came
    # 0.2 s after loading on a busy machine). So the click waits until that answer is in and applied.
    await page.wait_for("performance.getEntriesByType('resource').some(e => e.name.includes('/stats/requests')"
                        " && e.responseEnd > 0)", timeout_s=60)  # fmt: skip
    await page.evaluate(SETTLED)
    # one click each for start and stop, as a user would: the page once stayed at READY after a start
    # and at CLEANUP after a stop on a busy machine (a poll answered mid-change ended its polling)
    await page.evaluate(f"{button('/^start$/i')}.click()")
    await _wait_or_shoot(page, f"!!{button('/loadgen/i')}", screenshot.with_name("after-start.png"))
    started = time.monotonic()
    # past Locust's 12 s RPS window, so that it holds no start-up second even when the header shows a
    # figure 4 s old (the page polls every 2 s, and the server caches its answer for 2 s)
    await asyncio.sleep(19)
    seen["header_rps"] = await page.wait_for(f"{HEADER_RPS} > 0 && {HEADER_RPS}", timeout_s=10)
    now_ns = time.perf_counter_ns()
    seen["sim_rps"] = _sim_rate(sim_url, now_ns - 12_000_000_000, now_ns - 2_000_000_000)
    seen["running_s"] = time.monotonic() - started
    seen["statistics_rows"] = await page.evaluate(
        "Array.from(document.querySelector('table').querySelectorAll('tbody tr'))"
        ".map(row => row.cells[1].innerText.trim())"
    )
    await page.evaluate(button("/loadgen/i") + ".click()")
    table_text = (
        "(() => { const t = Array.from(document.querySelectorAll('table')).find(t => /Metric/.test(t.innerText));"
        " return t && /TTFT \\(ms\\)\\t[1-9]/.test(t.innerText) && t.innerText; })()"
    )
    seen["loadgen_table"] = await page.wait_for(table_text, timeout_s=30)
    points = f"{FRAME}?.contentWindow?.loadgenChartPoints"
    first = await page.wait_for(f"{points} > 0 && {points}", timeout_s=30)
    await asyncio.sleep(5)
    seen["chart_points"] = [first, await page.evaluate(points)]
    chart = f"{FRAME}.contentDocument.getElementById('ttft')"
    seen["chart_traces"] = await page.evaluate(f"{chart}.data.length")
    seen["chart_ttft_p50"] = await page.evaluate(f"{chart}.data[0].y.filter(v => v !== null).at(-1)")
    # tokens/s and requests/s on charts of their own: on one, the same shape twice, one line hid the other
    seen["rate_charts"] = await page.evaluate(
        f"['throughput', 'requests'].map(id => {FRAME}.contentDocument.getElementById(id).data.map(t => t.name))"
    )
    await page.screenshot(screenshot, full_page=True)
    await page.evaluate(f"{button('/^stop$/i')}.click()")
    await _wait_or_shoot(page, "/stopped/i.test(document.body.innerText)", screenshot.with_name("after-stop.png"))
    return seen


async def _wait_or_shoot(page: Any, expression: str, screenshot: Path) -> None:
    try:
        await page.wait_for(expression, timeout_s=60)
    except TimeoutError:
        await page.screenshot(screenshot)
        raise


def test_locust_options_that_take_a_value_are_not_read_as_the_scenario() -> None:
    from loadgen.cli import build_parser
    from loadgen.cli.locust import locust_command

    args, extra = build_parser().parse_known_args(["locust", "--csv", "lc", "--headless", "--html", "r.html"])
    assert args.scenario is None and extra == []
    command = locust_command(args, "http://127.0.0.1:1", 2, extra)
    assert command[command.index("--csv") + 1] == "lc" and command[command.index("--html") + 1] == "r.html"


def test_the_web_ui_refuses_cross_site_requests_and_a_new_target() -> None:
    from types import SimpleNamespace

    from loadgen.locust.guard import state_change_refusal

    options = SimpleNamespace(web_host="127.0.0.1", web_port=8089)
    pinned = "http://127.0.0.1:9000"
    ok = state_change_refusal("127.0.0.1:8089", "http://127.0.0.1:8089", "/swarm", pinned, options, pinned)
    assert ok is None
    assert "from http://evil.example" in (state_change_refusal("127.0.0.1:8089", "http://evil.example", "/swarm",
                                                               pinned, options, pinned) or "")  # fmt: skip
    assert "not evil.example" in (state_change_refusal("evil.example:8089", None, "/stop", None, options, pinned)
                                  or "")  # fmt: skip
    moved = state_change_refusal("127.0.0.1:8089", None, "/swarm", "http://169.254.169.254", options, pinned)
    assert moved is not None and "pinned to http://127.0.0.1:9000" in moved


def test_the_web_ui_keeps_its_pinned_target(start_sim: SimFactory, tmp_path: Path) -> None:
    """POST /swarm with another host is refused over HTTP; the configured one starts the test."""
    sim = start_sim("fixed:5,1")
    port = free_port()
    ui = _loadgen("--web-port", str(port), "--users", "1", "--endpoint", sim.url, "--max-tokens", "4",
                  "--output", str(tmp_path / "ui"))  # fmt: skip
    try:
        _wait_http(f"http://127.0.0.1:{port}/")

        def swarm(host: str, origin: str | None = None) -> int:
            data = urllib.parse.urlencode({"user_count": 1, "spawn_rate": 1, "host": host}).encode()
            request = urllib.request.Request(f"http://127.0.0.1:{port}/swarm", data=data, method="POST")
            if origin:
                request.add_header("Origin", origin)
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return response.status
            except urllib.error.HTTPError as error:
                return error.code

        assert swarm("http://127.0.0.1:1") == 403
        assert swarm(sim.url, origin="http://evil.example") == 403
        assert swarm(sim.url) == 200
    finally:
        _stop(ui)
