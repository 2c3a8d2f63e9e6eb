"""The hostile suite: each case runs loadgen against the hostile server (``tests/reliability/hostile.py``)
in one of its modes and asserts what the server saw and what loadgen wrote."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from loadgen.cli import main
from loadgen.errors import ConfigError
from tests.reliability.hostile import (
    after_preflight,
    answer_and_close,
    endless_header,
    hostile_server,
    silent,
    stream,
    unique_headers,
)

RUN = ["run", "--api", "openai-completions", "--model", "m", "--max-tokens", "3", "--warmup", "0", "--quiet"]


def records(output: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (output / "requests.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("mode", [endless_header, unique_headers], ids=["endless_header", "unique_headers"])
def test_response_headers_are_bounded(mode: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: an endless header value grew until the request timeout, unique header names to 2.8 GB."""
    with hostile_server(mode) as server:
        assert main([*RUN, "--endpoint", server.url, "--requests", "1", "--output", str(tmp_path / "checked")]) == 1
    error = capsys.readouterr().err
    assert "preflight request to http://127.0.0.1" in error and "headers ran over 256 KiB" in error  # one line
    with hostile_server(after_preflight(mode)) as server:
        code = main([*RUN, "--endpoint", server.url, "--requests", "2", "--output", str(tmp_path)])
    assert code == 3  # every request failed, and said why
    failures = records(tmp_path)
    assert [record["error_kind"] for record in failures] == ["protocol_error"] * 2
    assert "headers ran over 256 KiB" in failures[0]["error"]
    assert len(server.generation_requests()) == 3


def test_a_query_string_in_the_endpoint_goes_with_every_request(tmp_path: Path) -> None:
    """Before: Azure's ?api-version= was dropped in run mode and landed inside the /metrics URL."""
    with hostile_server(stream) as server:
        code = main([*RUN, "--endpoint", f"{server.url}/?api-version=2024-06-01", "--requests", "3",
                     "--telemetry", "server", "--telemetry-interval", "0.2", "--output", str(tmp_path)])  # fmt: skip
    assert code == 0
    targets = {seen.target for seen in server.seen}
    assert "/v1/completions?api-version=2024-06-01" in targets
    assert "/metrics?api-version=2024-06-01" in targets
    assert not any("api-version" in target.split("?")[0] for target in targets)


def test_asking_for_connection_close_is_not_warned_as_a_server_fault(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: with --header 'Connection: close' loadgen warned that the server closed keep-alive connections."""
    with hostile_server(answer_and_close) as server:
        code = main(["run", "--api", "openai-completions", "--model", "m", "--max-tokens", "3", "--warmup", "0",
                     "--endpoint", server.url, "--header", "Connection: close", "--requests", "12",
                     "--concurrency", "2", "--output", str(tmp_path)])  # fmt: skip
    printed = " ".join(capsys.readouterr().out.split())
    assert code == 0
    assert all(seen.headers.get("connection") == "close" for seen in server.generation_requests())
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["client"]["connections"]["closes_announced"] == 12
    assert "closed the connection after most responses" not in printed


def test_a_silent_server_is_said_during_the_preflight_and_waited_for_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: nothing printed for 6 minutes (three attempts, each its whole first-token timeout)."""
    with hostile_server(silent) as server:
        code = main(["run", "--api", "openai-completions", "--model", "m", "--endpoint", server.url,
                     "--first-token-timeout", "6", "--requests", "1", "--output", str(tmp_path)])  # fmt: skip
    printed = capsys.readouterr()
    assert code == 1
    assert "to answer the preflight request (up to 6 s" in " ".join(printed.out.split())
    assert "timed out" in printed.err or "no response" in printed.err or "no bytes" in printed.err, printed.err
    assert len(server.generation_requests()) == 1


# --- hostile result files for `loadgen import` --------------------------------------------------------

IMPORTS = Path(__file__).resolve().parents[1] / "imports" / "files"


def _edited(name: str, edit: Any) -> str:
    data = json.loads((IMPORTS / name).read_text())
    edit(data)
    return json.dumps(data)


def _set(path: tuple[Any, ...], value: Any) -> Any:
    def edit(data: Any) -> None:
        for key in path[:-1]:
            data = data[key]
        data[path[-1]] = value

    return edit


GUIDELLM = "guidellm_benchmarks.json"
VLLM = "vllm_bench.json"
AIPERF = "profile_export_aiperf.json"
HOSTILE_FILES = {  # case → (file text, what the one line says)
    "deep_nesting": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    "deep_object": ('{"benchmarks": ' + '{"a": ' * 100_000 + "1" + "}" * 100_001, "nested too deeply"),
    "huge_integer": (
        _edited(VLLM, _set(("completed",), 0)).replace('"completed": 0', '"completed": ' + "9" * 5000),
        "not valid JSON",
    ),
    "huge_float_integer": (
        _edited(VLLM, _set(("duration",), 0)).replace('"duration": 0', '"duration": ' + "9" * 400),
        "too large",
    ),
    "infinity_count": (_edited(VLLM, _set(("completed",), float("inf"))), "expected a finite figure"),
    "infinity_text": (_edited(VLLM, _set(("request_throughput",), "Infinity")), "expected a finite figure"),
    "negative_rate": (_edited(VLLM, _set(("request_throughput",), -2.0)), "expected a finite figure ≥ 0"),
    "negative_latency": (_edited(VLLM, _set(("p99_ttft_ms",), -5)), "expected a finite figure ≥ 0"),
    "list_for_number": (_edited(VLLM, _set(("completed",), [1, 2])), "is not a number"),
    "object_for_number": (_edited(AIPERF, _set(("request_throughput", "avg"), {"a": 1})), "is not a number"),
    "string_for_count": (_edited(AIPERF, _set(("request_count", "avg"), "many")), "'many' is not a number"),
    "list_for_strategy_streams": (
        _edited(GUIDELLM, _set(("benchmarks", 1, "args", "strategy", "streams"), [16])),
        "is not a number",
    ),
    "list_for_percentiles": (
        _edited(GUIDELLM, _set(("benchmarks", 0, "metrics", "request_latency", "successful", "percentiles"), [1, 2])),
        "not the shape",
    ),
    "benchmark_not_object": (_edited(GUIDELLM, _set(("benchmarks", 0), 7)), "no metrics"),
    "negative_streams": (
        _edited(GUIDELLM, _set(("benchmarks", 1, "args", "strategy", "streams"), -4)),
        "expected a finite figure ≥ 0",
    ),
    "zero_load_row": ("users,TTFT p99 (ms),req/s,output tokens\n0,30,2,100\n", "no concurrency or rate"),
    "negative_load_row": ("users,TTFT p99 (ms),req/s,output tokens\n-4,30,2,100\n", "expected a finite figure"),
    "nan_text_count": (
        "users,TTFT p99 (ms),req/s,output tokens,completed\n4,30,2,100,1e999\n",
        "expected a finite figure",
    ),
    "table_200k_rows": (
        "users,TTFT p99 (ms),req/s,output tokens\n" + "".join(f"{n},30,2,100\n" for n in range(1, 200_001)),
        "at most 10,000",
    ),
    "binary": ("\x00\x01\x02" * 100, "a header row and at least one row"),
    "json_scalar": ("123", "a header row and at least one row"),
    "json_list": ("[1, 2, 3]", "JSON, but not"),
    "vllm_rate_object": (_edited(VLLM, _set(("request_rate",), {"x": 1})), "is not a number"),
}


@pytest.mark.parametrize("case", list(HOSTILE_FILES))
def test_hostile_result_files_are_one_line(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: 10 of 23 such files exited 70 (an internal error) and a 200k-row table took 2 GB."""
    text, message = HOSTILE_FILES[case]
    path = tmp_path / ("results.csv" if not text.lstrip().startswith(("{", "[")) else "results.json")
    path.write_text(text)
    code = main(["import", str(path), "--output", str(tmp_path / "out"), "--load", "4", "--output-tokens", "100"])
    error = capsys.readouterr().err
    assert code == 2, error
    assert error.count("\n") == 1 and "Traceback" not in error
    assert re.search(message, error), error


# --- hostile results and outputs for `loadgen report`, `plan` and `serve-sim` ----------------------


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("hostile") / "run"
    with hostile_server(stream) as server:
        assert main([*RUN, "--endpoint", server.url, "--requests", "3", "--output", str(output)]) == 0
    return output


def _copy_of(run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    return copy


@pytest.mark.parametrize(
    "file, text, message",
    [
        ("config.json", '{"options": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
        ("summary.json", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("config.json", '{"endpoint": {"a": 1}}', "Expected `str | null`, got `object` - at `$.endpoint`"),
        ("requests.jsonl", "[1, 2]\n", "requests.jsonl:1: not a JSON record (an object)"),
        ("requests.jsonl", '{"index": "x"}\n', "requests.jsonl:1: not a request record (Expected `int`, got `str`"),
        ("requests.jsonl", "[" * 100_000 + "]" * 100_000 + "\n{}\n", "requests.jsonl:1: not a JSON record"),
    ],
    ids=[
        "nested_config",
        "nested_summary",
        "config_wrong_type",
        "record_not_object",
        "record_wrong_type",
        "record_nested",
    ],
)
def test_crafted_result_files_are_one_line(finished_run: Path, tmp_path: Path, file: str, text: str, message: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """Before: report exited 70 (an internal error) on a crafted config.json or a deeply nested summary.json."""
    run = _copy_of(finished_run, tmp_path)
    (run / file).write_text(text)
    code = main(["report", str(run), "--output", str(tmp_path / "r.html"), "--export", "csv"])
    error = capsys.readouterr().err
    assert code == 2 and message in error and error.count("\n") == 1, error


def test_a_report_that_cannot_be_written_is_one_line(finished_run: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """Before: a read-only place for --output was "internal error" (exit 70)."""
    (tmp_path / "a-file").write_text("")
    assert main(["report", str(finished_run), "--output", str(tmp_path / "a-file" / "r.html")]) == 74
    assert "cannot write " in capsys.readouterr().err


def test_report_is_linear_in_levels(tmp_path: Path) -> None:
    """Before: 20,000 levels still rendering after 400 s (a per-level scan of every level). Counted
    with a counter, not a clock: the per-metric statistic choice is made once per metric."""
    from loadgen.metrics.results import Latency

    table = "users,TTFT p50 (ms),TTFT p99 (ms),req/s,output tokens\n"
    table += "".join(f"{n},{20 + n / 100},{40 + n / 100},{1 + n / 1000},100\n" for n in range(1, 3001))
    (tmp_path / "levels.csv").write_text(table)
    assert main(["import", str(tmp_path / "levels.csv"), "--output", str(tmp_path / "sweep")]) == 0
    calls = [0]
    original = Latency.metric

    def counted(self: Latency, name: str) -> Any:
        calls[0] += 1
        return original(self, name)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Latency, "metric", counted)
        assert main(["report", str(tmp_path / "sweep"), "--output", str(tmp_path / "r.html")]) == 0
    assert calls[0] < 30 * 3000  # a few per level; quadratic was over 18,000,000


def test_csv_export_never_writes_a_formula(finished_run: Path, tmp_path: Path) -> None:
    """Before: prompt ids, finish reasons and directory names starting with = + - @ were written as they are."""
    run = _copy_of(finished_run, tmp_path / "+cmd")
    lines = (run / "requests.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    record["prompt_id"], record["finish_reason"] = '=HYPERLINK("http://evil.example","x")', "@SUM(A1)"
    (run / "requests.jsonl").write_text("\n".join([json.dumps(record), *lines[1:]]) + "\n")
    assert main(["report", str(run), "--output", str(tmp_path / "r.html"), "--export", "csv"]) == 0
    with (tmp_path / "requests.csv").open() as rows:
        first = next(csv.DictReader(rows))
    assert first["prompt_id"] == '\'=HYPERLINK("http://evil.example","x")'
    assert first["finish_reason"] == "'@SUM(A1)" and first["source"].startswith(str(tmp_path))
    with (tmp_path / "summaries.csv").open() as rows:
        assert all(not value.startswith(("=", "+", "@")) for row in csv.DictReader(rows) for value in row.values())


def test_a_profile_name_cannot_plant_a_link_in_a_chart(tmp_path: Path) -> None:
    """Before: a profile named '<a href=…>' became a live link in the plan page's cost chart."""
    from loadgen.report.plots import Chart

    hostile = '<a href="http://evil.example">cheap</a>'
    page = Chart("cost", hostile, "profile", "$").bars("cost", [hostile], [1.0]).mark(0, 1.0, hostile).html()
    spec = json.loads(page.split('class="plot-spec" data-target="cost">')[1].removesuffix("</script>"))
    assert spec["data"][0]["x"] == ['&lt;a href="http://evil.example"&gt;cheap&lt;/a&gt;']
    assert spec["layout"]["title"]["text"].startswith("&lt;a href")
    assert spec["layout"]["annotations"][0]["text"].startswith("&lt;a href")
    assert "<a" not in page


@pytest.mark.parametrize("port", ["99999", "-1"])
def test_a_port_out_of_range_is_one_line(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: serve-sim --port 99999 was "internal error: OverflowError" (exit 70)."""
    with pytest.raises(SystemExit) as exited:
        main(["serve-sim", "--port", port])
    assert exited.value.code == 2
    assert f"argument --port: invalid port value: '{port}'" in capsys.readouterr().err


@pytest.mark.parametrize("error", [RuntimeError, ConfigError], ids=["internal_error", "one_line_error"])
def test_errors_and_crash_files_are_redacted(error: type[Exception], monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """Redaction on every path: the error line and the crash file's traceback too."""
    key, password, query = "sk-crash-0f3e9a", "pw-crash-77b1", "qk-crash-5c2d"

    def failing(*_: object, **__: object) -> None:
        raise error(f"failed with Bearer {key} at http://me:{password}@h/?key={query}")

    monkeypatch.setattr("loadgen.cli.app.build_plan", failing)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    code = main(["run", "--header", f"Authorization: Bearer {key}", "--endpoint",
                 f"http://me:{password}@127.0.0.1:1/?key={query}"])  # fmt: skip
    printed = capsys.readouterr().err
    crash_files = "".join(path.read_text() for path in tmp_path.glob("loadgen-crash-*.log"))
    assert code == (70 if error is RuntimeError else 2)
    assert bool(crash_files) == (error is RuntimeError)
    for secret in (key, password, query):
        assert secret not in printed + crash_files
