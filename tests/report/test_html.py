"""The HTML report: self-contained, escaped, and rendered by a real browser."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from loadgen.cli import main
from tests.conftest import SimFactory

HOSTILE = '<script>alert("x")</script>'


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install chromium (.ci/run does)")
        pytest.skip("chromium not installed here")
    return path


def browser(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         f"--user-data-dir={Path(url.removeprefix('file://')).parent / 'chromium-profile'}", *extra, url],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip


def test_hostile_text_is_escaped(start_sim: SimFactory, tmp_path: Path) -> None:
    sim = start_sim("fixed:2,1")
    output = tmp_path / "run"
    assert main(["run", "--quiet", "--endpoint", sim.url, "--requests", "3", "--max-tokens", "4",
                 "--output", str(output)]) == 0  # fmt: skip
    summary = json.loads((output / "summary.json").read_text())
    summary["model"] = HOSTILE
    summary["requests"]["errors_by_kind"] = {"http_5xx": 1}
    summary["requests"]["first_error_by_kind"] = {"http_5xx": f"HTTP 502: HTML page: {HOSTILE}"}
    (output / "summary.json").write_text(json.dumps(summary))
    report = tmp_path / "report.html"
    assert main(["report", str(output), "--output", str(report)]) == 0
    html = report.read_text()
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "<link" not in html and 'src="http' not in html  # self-contained: nothing fetched
    assert "<script" not in html


def test_report_renders_in_a_browser(start_sim: SimFactory, tmp_path: Path) -> None:
    sim = start_sim("llama2-7b-h100")
    sweep = tmp_path / "sweep"
    assert main(["sweep", "--quiet", "--endpoint", sim.url, "--concurrency", "1,4,16", "--requests", "8",
                 "--max-tokens", "16", "--output", str(sweep)]) == 0  # fmt: skip
    report = tmp_path / "report.html"
    assert main(["report", str(sweep), "--output", str(report)]) == 0
    url = f"file://{report}"
    dom = browser(url, "--dump-dom").stdout
    for element in ('id="r1-ttft"', 'id="r1-tpot"', 'id="r1-pareto"', 'id="r1-levels"', 'id="metadata"'):
        assert element in dom, element
    assert dom.count("<polyline") >= 5
    screenshot = tmp_path / "report.png"
    browser(url, f"--screenshot={screenshot}", "--window-size=1200,1600")
    assert screenshot.is_file() and screenshot.stat().st_size > 20_000


def test_csv_export_of_a_sweep(start_sim: SimFactory, tmp_path: Path) -> None:
    import csv

    sim = start_sim("fixed:2,1")
    sweep = tmp_path / "sweep"
    assert main(["sweep", "--quiet", "--endpoint", sim.url, "--concurrency", "1,2", "--requests", "4",
                 "--max-tokens", "5", "--output", str(sweep)]) == 0  # fmt: skip
    out = tmp_path / "out"
    assert main(["report", str(sweep), "--output", str(out / "report.html"), "--export", "csv"]) == 0
    summaries = list(csv.DictReader((out / "summaries.csv").open()))
    assert [row["concurrency"] for row in summaries] == ["1", "2"]
    assert all(float(row["ttft_p50_ms"]) > 0 and row["completed"] == "4" for row in summaries)
    requests = list(csv.DictReader((out / "requests.csv").open()))
    assert len(requests) == 4 + 1 + 4 + 2  # measured plus warm-up, both levels
    assert {row["chunks"] for row in requests if row["warmup"] == "False"} == {"5"}
