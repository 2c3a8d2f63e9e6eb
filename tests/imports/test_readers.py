"""Each format's reader, on small files written from that tool's documented format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadgen.cli import main
from loadgen.errors import ConfigError
from loadgen.imports.model import write_sweep
from loadgen.imports.readers import read_results
from loadgen.report.html import render_report

FILES = Path(__file__).parent / "files"


def imported(name: str, tmp_path: Path, **hints: object) -> dict:  # type: ignore[type-arg]
    sweep = read_results([FILES / name], **hints)  # type: ignore[arg-type]
    write_sweep(sweep, tmp_path / "sweep")
    return json.loads((tmp_path / "sweep" / "sweep.json").read_text())  # type: ignore[no-any-return]


def test_aiperf_json_maps_inter_token_latency_to_tpot(tmp_path: Path) -> None:
    sweep = imported("profile_export_aiperf.json", tmp_path)
    assert sweep["imported"]["tool"] == "aiperf"
    (level,) = sweep["levels"]
    assert {key: level["load"][key] for key in ("mode", "concurrency", "rate", "batch_size")} == {
        "mode": "closed", "concurrency": 100, "rate": None, "batch_size": 1}  # fmt: skip
    assert level["latency_ms"]["ttft"]["p99"] == 4119.33 and level["latency_ms"]["ttft"]["mean"] == 1588.8
    assert level["latency_ms"]["tpot"]["p50"] == 51.98  # AIPerf's inter_token_latency is loadgen's TPOT
    assert level["latency_ms"]["e2e"]["p95"] == 8980.84
    assert level["throughput"] == {
        "requests_per_s": 13.16, "output_tokens_per_s": 1274.63, "input_tokens_per_s": None, "sequences_per_s": 13.16,
        "offered_requests_per_s": None, "arrived_requests_per_s": None,
    }  # fmt: skip
    assert level["tokens"]["output_per_request"] == 96.85 and level["requests"]["completed"] == 200
    assert "TPOT" not in sweep["imported"]["definitions"]["ttft"]
    assert "(end-to-end − TTFT) ÷ (output tokens − 1)" in sweep["imported"]["definitions"]["tpot"]
    assert "hdr_histograms" in sweep["imported"]["lacks"] and "per_request_records" in sweep["imported"]["lacks"]


def test_aiperf_csv_needs_the_load_from_the_command_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not say its concurrency or request rate; give --load"):
        read_results([FILES / "profile_export_aiperf.csv"])
    level = imported("profile_export_aiperf.csv", tmp_path, loads=[100.0])["levels"][0]
    assert level["latency_ms"]["ttft"]["p95"] == 4051.43 and level["latency_ms"]["tpot"]["mean"] == 51.76
    assert level["throughput"]["requests_per_s"] == 13.16 and level["tokens"]["output_per_request"] == 96.85


def test_genai_perf_json_reads_the_stimulus(tmp_path: Path) -> None:
    sweep = imported("profile_export_genai_perf.json", tmp_path)
    assert sweep["imported"]["tool"] == "genai-perf"
    assert sweep["levels"][0]["load"]["concurrency"] == 8
    assert sweep["levels"][0]["tokens"]["input_per_request"] == 200.0


def test_vllm_bench_infinite_rate_with_max_concurrency_is_closed_loop(tmp_path: Path) -> None:
    sweep = imported("vllm_bench.json", tmp_path)
    (level,) = sweep["levels"]
    assert level["load"]["mode"] == "closed" and level["load"]["concurrency"] == 32
    assert level["latency_ms"]["ttft"]["p50"] == 209.9  # median
    assert level["latency_ms"]["itl_chunk"]["p99"] == 72.47  # vLLM's ITL is per chunk
    assert level["latency_ms"]["itl"]["p99"] is None
    assert {key: level["requests"][key] for key in ("completed", "failed", "error_rate")} == {
        "completed": 199, "failed": 1, "error_rate": 0.005}  # fmt: skip
    assert level["tokens"]["output_per_request"] == pytest.approx(50944 / 199)
    assert level["throughput"]["input_tokens_per_s"] == pytest.approx(101888 / 150.87)  # was null
    assert any("32 concurrent users" in item for item in sweep["imported"]["assumptions"])


def test_guidellm_levels_and_its_itl_is_tpot(tmp_path: Path) -> None:
    sweep = imported("guidellm_benchmarks.json", tmp_path)
    first, second = sweep["levels"]
    assert (first["load"]["concurrency"], second["load"]["concurrency"]) == (1, 16)
    assert first["latency_ms"]["e2e"]["p99"] == pytest.approx(590.0)  # seconds → ms
    assert second["latency_ms"]["tpot"]["p99"] == 6.8 and second["latency_ms"]["ttft"]["p50"] == 55.0
    assert second["requests"]["failed"] == 3 and second["requests"]["completed"] == 300
    assert "includes the first token" in sweep["imported"]["definitions"]["not imported"]


def test_a_published_markdown_table_of_means(tmp_path: Path) -> None:
    sweep = imported("published.md", tmp_path, output_tokens=1000.0, input_tokens=1000.0)
    levels = sweep["levels"]
    assert [level["load"]["concurrency"] for level in levels] == [1, 8, 32, 128]
    assert levels[2]["latency_ms"]["tpot"]["mean"] == 9.8 and levels[2]["latency_ms"]["tpot"]["p99"] is None
    assert levels[3]["throughput"]["requests_per_s"] == pytest.approx(6.9)  # 6,900 tok/s ÷ 1000 tokens
    assert any("from --output-tokens" in item for item in sweep["imported"]["derived"])
    assert any("ITL read as loadgen's TPOT" in item for item in sweep["imported"]["assumptions"])


def test_a_csv_table_with_units_in_the_names(tmp_path: Path) -> None:
    levels = imported("levels.csv", tmp_path)["levels"]
    assert levels[1]["latency_ms"]["ttft"]["p99"] == 98.0 and levels[1]["latency_ms"]["e2e"]["p50"] == 1520.0
    assert levels[2]["throughput"]["output_tokens_per_s"] == 2714.0 and levels[2]["tokens"]["output_per_request"] == 128


@pytest.mark.parametrize(
    ("name", "hints", "slo"),
    [
        ("profile_export_aiperf.json", {}, "ttft_p95=5s,tpot_p95=60ms"),
        ("profile_export_aiperf.csv", {"--load": "100"}, "ttft_p95=5s"),
        ("profile_export_genai_perf.json", {}, "ttft_p99=100ms"),
        ("vllm_bench.json", {}, "ttft_p99=2s,tpot_mean=80ms"),
        ("guidellm_benchmarks.json", {}, "ttft_p95=80ms,tpot_p99=6ms"),
        ("published.md", {"--output-tokens": "1000", "--input-tokens": "1000"}, "ttft_mean=200ms,tpot_mean=15ms"),
        ("levels.csv", {}, "ttft_p99=500ms"),
    ],
)
def test_every_format_imports_then_plans_and_reports(tmp_path: Path, name: str, hints: dict[str, str], slo: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    out = tmp_path / "imported"
    args = [item for pair in hints.items() for item in pair]
    assert main(["import", str(FILES / name), "--output", str(out), *args]) == 0
    assert main(["plan", "--sweep", str(out), "--slo", slo, "--target-rate", "20", "--output", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "imported from" in printed and "†" in printed
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["candidates"][0]["basis"] == "imported"
    html = render_report([out])
    assert "imported" in html and "no histograms or per-request records" in html


def test_plan_names_an_slo_statistic_the_import_lacks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "imported"
    assert main(["import", str(FILES / "published.md"), "--output", str(out), "--output-tokens", "1000"]) == 0
    capsys.readouterr()
    assert main(["plan", "--sweep", str(out), "--slo", "ttft_p99=200ms", "--target-rate", "20"]) == 2
    error = capsys.readouterr().err
    assert "no ttft p99 at load 1; it has ttft mean" in error.replace("\n", " ")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"hello": 1}', "not an AIPerf, GenAI-Perf, vllm bench serve or GuideLLM result"),
        ('{"benchmarks": []}', "no benchmarks"),
        ("{", "not valid JSON"),
        ("users,TTFT p99\n4,30\n", "a latency without a unit"),
        ("users,TTFT p99 (parsecs)\n4,30\n", "not a time unit"),
        ("TTFT p99 (ms),req/s\n30,2\n", "no load column"),
        ("users,TTFT p99 (ms),req/s\n4,thirty,2\n", "'thirty' is not a number"),
        ("users,TTFT p99 (ms),req/s\n4,30\n", "2 cells, the header has 3"),
        ("users,TTFT p99 (ms)\n4,30\n", "no throughput"),
        ("users,req/s\n4,2\n", "no output length"),
        ("users,TTFT p99 (ms)\n", "a header row and at least one row"),
        ("", "empty"),
    ],
)
def test_malformed_files_are_one_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "results.txt"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message) as raised:
        write_sweep(read_results([path]), tmp_path / "out")
    assert "\n" not in str(raised.value)


def test_cut_off_files_fail_with_one_line_or_import_what_they_hold(tmp_path: Path) -> None:
    for name in ("profile_export_aiperf.json", "vllm_bench.json", "guidellm_benchmarks.json", "levels.csv",
                 "profile_export_aiperf.csv", "published.md"):  # fmt: skip
        text = (FILES / name).read_text()
        for cut in range(1, len(text), max(1, len(text) // 40)):
            path = tmp_path / name
            path.write_text(text[:cut])
            try:
                write_sweep(read_results([path], loads=[4.0], output_tokens=100.0), tmp_path / "out")
            except ConfigError as error:
                assert "\n" not in str(error)


def test_mixed_tools_and_repeated_loads_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="different tools"):
        read_results([FILES / "vllm_bench.json", FILES / "profile_export_aiperf.json"])
    with pytest.raises(ConfigError, match="two levels at the same load"):
        read_results([FILES / "vllm_bench.json", FILES / "vllm_bench.json"])
    with pytest.raises(ConfigError, match="2 values for 1 files"):
        read_results([FILES / "vllm_bench.json"], loads=[1.0, 2.0])


def _with_ttfot(data: object, key: str, added: float) -> object:
    """A copy of another tool's result with a TTFOT beside each TTFT (``key``), ``added`` ms later."""
    if isinstance(data, dict):
        copied = {name: _with_ttfot(value, key, added) for name, value in data.items()}
        if key in data and isinstance(data[key], dict):
            ttft = json.dumps(data[key])
            copied[key.replace("time_to_first_token", "time_to_first_output_token")] = json.loads(
                ttft, parse_float=lambda text: float(text) + added)  # fmt: skip
        return copied
    if isinstance(data, list):
        return [_with_ttfot(item, key, added) for item in data]
    return data


@pytest.mark.parametrize("name, key", [("profile_export_aiperf.json", "time_to_first_token"),
                                       ("guidellm_benchmarks.json", "time_to_first_token_ms")])  # fmt: skip
def test_ttfot_is_kept_where_the_tool_has_it(tmp_path: Path, name: str, key: str) -> None:
    """AIPerf's time_to_first_output_token and GuideLLM's time_to_first_output_token_ms (to the
    first non-reasoning token) become loadgen's TTFOT, named in the definitions."""
    source = tmp_path / "source" / name
    source.parent.mkdir()
    source.write_text(json.dumps(_with_ttfot(json.loads((FILES / name).read_text()), key, 100.0)))
    sweep = imported(str(source), tmp_path)
    level = sweep["levels"][0]
    assert level["latency_ms"]["ttfot"]["p50"] == pytest.approx(level["latency_ms"]["ttft"]["p50"] + 100.0)
    assert "time_to_first_output_token" in sweep["imported"]["definitions"]["ttfot"]
