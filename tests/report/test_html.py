"""The HTML report: self-contained, escaped, and rendered by a real browser."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import msgspec
import pytest

from loadgen.cli import main
from tests.browser import FLAGS, chromium_path
from tests.conftest import SimFactory

HOSTILE = '<script>alert("x")</script>'


def browser(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    profile = Path(url.removeprefix("file://")).parent / "chromium-profile"
    return subprocess.run([chromium_path(), *FLAGS, f"--user-data-dir={profile}", *extra, url],
                          capture_output=True, text=True, timeout=90)  # fmt: skip


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
    # the only scripts are Plotly.js, its loader and the charts' JSON (whose "<" are escaped)
    assert html.count("<script") == 2 + html.count('<script type="application/json" class="plot-spec"')


def _pages(start_sim: SimFactory, tmp_path: Path) -> dict[str, Path]:
    """A run (with hostile text in it), a sweep (one level marked invalid), a comparison and a plan."""
    sim = start_sim("llama2-7b-h100")
    run, sweep, compare, plan = (tmp_path / name for name in ("run", "sweep", "compare", "plan"))
    assert main(["run", "--quiet", "--endpoint", sim.url, "--concurrency", "4", "--requests", "16", "--max-tokens",
                 "24", "--output", str(run)]) == 0  # fmt: skip
    summary = json.loads((run / "summary.json").read_text())
    summary["model"] = HOSTILE
    summary["requests"]["errors_by_kind"] = {"http_5xx": 1}
    summary["requests"]["first_error_by_kind"] = {"http_5xx": f"HTTP 502: {HOSTILE}"}
    (run / "summary.json").write_text(json.dumps(summary))
    assert main(["sweep", "--quiet", "--endpoint", sim.url, "--concurrency", "1,4,16", "--requests", "8",
                 "--max-tokens", "16", "--output", str(sweep)]) == 0  # fmt: skip
    levels = json.loads((sweep / "sweep.json").read_text())
    levels["levels"][2]["validity"] = {"verdict": "target_lagging", "valid": False, "marks": ["target_lagging"],
                                       "reasons": ["the simulated server ran 41% behind"], "checked": []}  # fmt: skip
    (sweep / "sweep.json").write_text(json.dumps(levels))
    assert main(["compare", "--quiet", "--variant", "slow=sim:fixed:10,4", "--variant", "fast=sim:fixed:10,2",
                 "--concurrency", "1,4", "--requests", "8", "--warmup", "0", "--max-tokens", "12",
                 "--output", str(compare)]) == 0  # fmt: skip
    assert main(["plan", "--sweep", str(sweep), "--slo", "ttft_p99=60ms", "--target-rate", "20",
                 "--measured-on", "aws-p5.48xlarge", "--model", "llama-2-7b", "--output", str(plan)]) == 0  # fmt: skip
    pages = {}
    for name, directory in (("run", run), ("sweep", sweep), ("compare", compare), ("plan", plan)):
        pages[name] = tmp_path / f"{name}.html"
        assert main(["report", str(directory), "--output", str(pages[name])]) == 0
    return pages


EXPECTED_CHARTS = {  # chart id → traces
    "run": {"r1-cdf-ttft": 1, "r1-cdf-itl": 1, "r1-cdf-tpot": 1, "r1-cdf-e2e": 1, "r1-over-time": 6,
            "r1-rate-over-time": 1, "r1-ttft-input": 1, "r1-itl-position": 2},
    "sweep": {"r1-ttft": 3, "r1-tpot": 3, "r1-pareto": 2},  # p50, p99 and the invalid level's cross
    "compare": {"r1-speedup-fast": 3, "r1-absolute-fast": 4},
    "plan": {"r1-plan-cost": 1},
}  # fmt: skip


TRACES_PER_CHART = (
    "Object.fromEntries([...document.querySelectorAll('.js-plotly-plot')].map(d => [d.id, d.data.length]))"
)


def test_report_pages_render_in_chromium(start_sim: SimFactory, tmp_path: Path) -> None:
    import asyncio

    from tests.browser import open_page

    pages = _pages(start_sim, tmp_path)
    assert all(page.stat().st_size < 5_500_000 for page in pages.values())  # Plotly.js embedded once

    async def check() -> None:
        async with open_page() as page:
            await page.send("Runtime.enable")
            await page.send("Network.enable")
            for name, path in pages.items():
                await page.navigate(f"file://{path}")
                await page.wait_for(
                    f"document.querySelectorAll('.js-plotly-plot').length >= {len(EXPECTED_CHARTS[name])}"
                )
                assert await page.evaluate("typeof Plotly") == "object"
                traces = await page.evaluate(TRACES_PER_CHART)
                for chart, count in EXPECTED_CHARTS[name].items():
                    assert traces.get(chart) == count, (name, chart, traces)
                text = await page.evaluate("document.body.innerText")
                if name in ("run", "sweep"):  # a p99 from a few requests is marked, and the mark explained
                    assert await page.evaluate("document.querySelectorAll('span.thin').length") > 0
                    assert "~ too few samples for that percentile: its 95 % interval reaches past" in text
                if name == "run":
                    assert HOSTILE in text  # shown as text, never run
                    assert await page.evaluate("document.querySelectorAll('script:not([type])').length") == 2
                if name == "sweep":
                    assert "✗target" in text and "the server lagged its own model" in text
                    # the header's verdict is every level's, not the first one's (it said "valid")
                    assert "2 of 3 levels valid · INVALID at c=16: the simulated server ran 41% behind" in text
                    assert await page.evaluate("document.getElementById('r1-pareto').data[1].name") == "not valid"
                    # the frontier's line joins the 2 valid levels; it zig-zagged through the invalid one
                    assert await page.evaluate("document.getElementById('r1-pareto').data[0].x.length") == 2
                if name == "compare":
                    assert "failed base/cand" in text and "ok" in text
                if name == "plan":
                    assert "True" not in text and "False" not in text and "ttft p99 ≤ 60 ms" in text
                    # each price says its kind, and a plan that mixes owned and cloud prices warns
                    assert "on-demand" in text and "owned" in text and "the costs mix kinds of price" in text
            assert page.console_errors() == []
            assert page.requested_urls() == [f"file://{path}" for path in pages.values()]  # nothing from the network

    asyncio.run(check())


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
    levels = json.loads((sweep / "sweep.json").read_text())["levels"]
    assert [row["verdict"] for row in summaries] == [level["validity"]["verdict"] for level in levels]  # was missing
    # the samples behind the percentiles, and which ones too few stand behind (4 requests: p90 and above)
    assert [row["ttft_count"] for row in summaries] == ["4", "4"]
    assert summaries[0]["thin_percentiles"].split() == ["ttft_p90_ms", "ttft_p99_ms", "tpot_p99_ms", "itl_p99_ms",
                                                         "e2e_p99_ms", "schedule_lag_p99_ms"]  # fmt: skip
    requests = list(csv.DictReader((out / "requests.csv").open()))
    assert len(requests) == 4 + 1 + 4 + 2  # measured plus warm-up, both levels
    assert {row["chunks"] for row in requests if row["warmup"] == "False"} == {"5"}


def test_merged_hlogs_parquet_and_the_extra_sections(start_sim: SimFactory, tmp_path: Path) -> None:
    pyarrow_parquet = pytest.importorskip("pyarrow.parquet")
    sim = start_sim("fixed:2,1")
    runs = [tmp_path / "a", tmp_path / "b"]
    for run, count in zip(runs, (3, 5), strict=True):
        assert main(["run", "--quiet", "--endpoint", sim.url, "--requests", str(count), "--max-tokens", "4",
                     "--output", str(run)]) == 0  # fmt: skip
    plan = {"target": {"peak_requests_per_s": 50.0, "headroom": 0.2}, "slo_ms": {"ttft_p95": 800.0},
            "measured_capacity": {"requests_per_s": 17.2, "requests_per_s_low": 16.0, "requests_per_s_high": 18.0,
                                  "users": None, "binding": "ttft_p95", "kind": "interpolated",
                                  "output_tokens_per_request": 128.0, "input_tokens_per_request": None,
                                  "joules_per_output_token": None},
            "candidates": [{"profile": "aws-p5.48xlarge", "description": "8x H100", "estimate": True,
                            "feasible": True, "binding": "ttft_p95", "replica_accelerators": 1, "replicas": 2,
                            "capacity_rps": 40.0, "capacity_rps_low": 30.0, "capacity_rps_high": 50.0,
                            "instances": 1, "cost_per_month": 71000.0}]}  # fmt: skip
    (runs[1] / "plan.json").write_text(json.dumps(plan))
    out = tmp_path / "out"
    assert (
        main(["report", "--merge", *map(str, runs), "--output", str(out / "report.html"), "--export", "parquet"]) == 0
    )
    html = (out / "report.html").read_text()
    merged = html[html.index('id="merged-latency"') :]
    ttft_row = merged.split("</tr>")[1]
    assert '<td class="">8</td>' in ttft_row, ttft_row  # 3 + 5 requests, merged from the .hlog files
    assert "capacity plan" in html and "aws-p5.48xlarge" in html
    assert pyarrow_parquet.read_table(out / "requests.parquet").num_rows == 3 + 5 + 2  # and one warm-up each
    summaries = pyarrow_parquet.read_table(out / "summaries.parquet").to_pylist()
    assert [row["completed"] for row in summaries] == [3, 5]


def test_invalid_levels_are_marked_in_the_report(tmp_path: Path) -> None:
    from loadgen.metrics.results import RunSummary
    from loadgen.metrics.validity import level_validity
    from loadgen.report.html import render_report
    from tests.plan.sweeps import level, write_sweep

    levels = [level(8, 4.0, 200, 30), level(64, 6.0, 400, 50)]
    for summary in levels:
        summary.update(partial=False, client={"saturated": False}, throughput={**summary["throughput"]})
        summary["requests"]["failed"] = 0
        for metric in ("ttft", "tpot"):
            summary["latency_ms"][metric]["p99"] = summary["latency_ms"][metric]["p95"]
        summary["latency_ms"]["e2e"] = {"p50": 1000.0, "p99": 2000.0}

    def verdict(summary: dict[str, object]) -> object:
        return msgspec.to_builtins(level_validity(RunSummary.from_json(summary)))

    levels[0]["validity"] = verdict({"requests": {"completed": 100, "failed": 0}})
    lagging = {"source": "sim", "lag_fraction": 0.41, "late_s": 0.82, "modelled_s": 2.0}
    levels[1]["validity"] = verdict({"requests": {"completed": 100, "failed": 0}, "target": lagging})
    html = render_report([Path(write_sweep(tmp_path / "s", levels))])
    assert "✗target" in html and "the server lagged its own model" in html


def test_the_run_page_says_what_the_run_delivered(start_sim: SimFactory, tmp_path: Path) -> None:
    """Before: no throughput at all on the run page (req/s, tok/s, completed/failed, goodput,
    thresholds), and --fail-on printed as Python dicts."""
    import html as html_module
    import re

    sim = start_sim("fixed:2,1")
    output = tmp_path / "run"
    assert main(["run", "--quiet", "--endpoint", sim.url, "--requests", "6", "--max-tokens", "4", "--warmup", "0",
                 "--slo", "ttft=10s", "--fail-on", "ttft_p99>1ms", "--output", str(output)]) == 99  # fmt: skip
    assert main(["report", str(output), "--output", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text()
    text = html_module.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", re.sub(r"<script.*?</script>", "", page,
                                                                                       flags=re.S))))  # fmt: skip
    summary = json.loads((output / "summary.json").read_text())
    assert "requests completed / failed 6 / 0" in text
    assert f"requests/s {summary['throughput']['requests_per_s']:,.2f}" in text
    assert "goodput (ttft ≤ 10000 ms) 6 requests (100.0%)" in text
    assert "--fail-on ttft_p99>1ms BREACHED: ttft_p99>1ms (> 1 ms fails)" in text
    options = text.split("options:")[1][:300]
    assert "--requests 6 --warmup 0 --max-tokens 4" in options and "--fail-on ttft_p99>1ms" in options
    assert "{" not in options


def test_log_axes_are_labelled_at_the_levels_or_powers_of_ten() -> None:
    """Before: Plotly's minor labels on log axes read "5 2 100 5 2"."""
    from loadgen.report.plots import Chart

    chart = Chart("c", "t", "users (log)", "ms (log)", log_x=True, log_y=True).line(
        "p50", [1, 2, 4, 64], [5, 9, 30, 900]
    )
    spec = json.loads(chart.html().split('data-target="c">')[1].removesuffix("</script>"))
    assert spec["layout"]["xaxis"]["tickvals"] == [1, 2, 4, 64] and spec["layout"]["xaxis"]["ticktext"][-1] == "64"
    assert spec["layout"]["yaxis"]["dtick"] == 1
    many = Chart("d", "t", "x", "y", log_x=True).line("p50", list(range(1, 40)), list(range(1, 40))).html()
    assert json.loads(many.split('data-target="d">')[1].removesuffix("</script>"))["layout"]["xaxis"]["dtick"] == 1


def test_a_chart_with_no_point_says_so() -> None:
    """Before: an imported sweep without end-to-end latencies drew an empty Pareto chart."""
    from loadgen.report.plots import Chart

    empty = Chart("p", "throughput against latency (Pareto)", "e2e", "tok/s").line("levels", [None, None], [10, 20])
    assert empty.html() == '<div class="chart empty" id="p">throughput against latency (Pareto): no data</div>'
