import json
from pathlib import Path

import pytest

from loadgen.cli import main
from loadgen.errors import ConfigError
from loadgen.run.compare import parse_variants
from tests.conftest import SimFactory


@pytest.mark.parametrize("texts", [
    ["only=sim:zero-delay"], ["a=ftp://x", "b=sim:zero-delay"], ["a=sim:x", "a=sim:y"],
    ["../../outside=sim:zero-delay", "b=sim:zero-delay"], ["a/b=sim:zero-delay", "c=sim:zero-delay"],
    [".hidden=sim:zero-delay", "b=sim:zero-delay"],
])  # fmt: skip
def test_bad_variants(texts: list[str]) -> None:
    with pytest.raises(ConfigError, match="--variant"):
        parse_variants(texts)


def test_compare_end_to_end_with_two_simulators(tmp_path: Path) -> None:
    code = main(["compare", "--quiet", "--variant", "slow=sim:fixed:10,4", "--variant", "fast=sim:fixed:10,2",
                 "--concurrency", "1,4", "--requests", "8", "--warmup", "0", "--max-tokens", "20", "--save-text",
                 "--output", str(tmp_path)])  # fmt: skip
    assert code == 0
    report = json.loads((tmp_path / "compare.json").read_text())
    assert report["baseline"] == "slow" and [level["level"] for level in report["levels"]] == ["c=1", "c=4"]
    for level in report["levels"]:
        assert level["comparison"]["tpot"]["speedup"] == pytest.approx(2.0, rel=0.15)
        assert level["comparison"]["paired_candidate_faster"] == 1.0
        assert level["comparison"]["identical_outputs"] == 1.0  # both simulators produce the same text
    assert next((tmp_path / "slow").glob("level-01-*")).joinpath("summary.json").is_file()
    config = json.loads((tmp_path / "config.json").read_text())
    assert [variant["name"] for variant in config["variants"]] == ["slow", "fast"]
    from loadgen.report.export import export_csv

    summaries, records = export_csv([tmp_path], tmp_path / "export")  # every variant's levels, none dropped
    assert len(summaries.read_text().splitlines()) == 1 + 2 * 2
    assert len(records.read_text().splitlines()) == 1 + 2 * 2 * 8


def test_compare_reports_the_servers_draft_acceptance(tmp_path: Path) -> None:
    code = main(["compare", "--quiet", "--variant", "base=sim:llama2-7b-h100", "--variant",
                 "spec=sim:llama2-7b-h100-spec", "--concurrency", "2", "--requests", "6", "--max-tokens", "32",
                 "--ignore-eos", "--output", str(tmp_path)])  # fmt: skip
    assert code == 0
    (level,) = json.loads((tmp_path / "compare.json").read_text())["levels"]
    rate = level["comparison"]["candidate_acceptance_rate"]  # from the simulator's vLLM-style spec_decode counters
    assert rate is not None and 0.05 < rate < 0.95


def test_variants_of_one_endpoint_with_other_request_fields(start_sim: SimFactory, tmp_path: Path) -> None:
    sim = start_sim("fixed:5,2")
    scenario = tmp_path / "ab.yaml"
    scenario.write_text(
        "variants:\n"
        "  - {name: long, endpoint: endpoint}\n"
        "  - {name: short, endpoint: endpoint, extra_body: {max_tokens: 4}}\n"
    )
    code = main(["compare", str(scenario), "--quiet", "--endpoint", sim.url, "--concurrency", "1", "--requests", "4",
                 "--max-tokens", "16", "--output", str(tmp_path / "out")])  # fmt: skip
    assert code == 0
    report = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert report["variants"][1] == {"name": "short", "target": "endpoint", "extra_body": {"max_tokens": 4}}
    (level,) = report["levels"]
    assert level["comparison"]["output_tokens_mean"] == {"baseline": 16.0, "candidate": 4.0}
    assert level["comparison"]["lengths_match"] is False  # flagged: not like for like


@pytest.mark.parametrize("text", ["fast=ftp://x", "x=endpoint {not json}", "x=endpoint [1]", "=sim:fixed:1,1"])
def test_bad_variant_texts(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_variants([text, "other=sim:fixed:1,1"])


def test_a_candidate_with_no_successful_request_gives_no_speedup_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], start_sim: SimFactory
) -> None:
    broken = start_sim("fixed:5,1", break_rate=1.0)  # every stream breaks after its first token or more
    code = main(["compare", "--variant", "base=sim:fixed:5,1", "--variant", f"broken={broken.url}",
                 "--concurrency", "2", "--requests", "8", "--warmup", "0", "--max-tokens", "8",
                 "--output", str(tmp_path)])  # fmt: skip
    printed = " ".join(capsys.readouterr().out.split())
    assert code == 3, printed  # the candidate's level failed: as run and sweep, exit 3
    comparison = json.loads((tmp_path / "compare.json").read_text())["levels"][0]["comparison"]
    assert comparison["e2e"]["speedup"] is None and "too few successful requests" in comparison["e2e"]["reason"]
    assert comparison["requests"]["candidate"] == {"completed": 0, "failed": 8}
    assert "no speedup" in printed and "faster end to end at every level" not in printed
    assert "✗ broken ✗failed" in printed  # the level is marked invalid too


def test_compare_without_streaming_reports_e2e_and_ttft_but_no_tpot(tmp_path: Path) -> None:
    code = main(["compare", "--variant", "slow=sim:fixed:5,4", "--variant", "fast=sim:fixed:5,1", "--no-stream",
                 "--concurrency", "2", "--requests", "8", "--warmup", "0", "--max-tokens", "8", "--quiet",
                 "--output", str(tmp_path)])  # fmt: skip
    assert code == 0
    comparison = json.loads((tmp_path / "compare.json").read_text())["levels"][0]["comparison"]
    # 5 + 7×4 ms against 5 + 7×1 ms of model time: a busy machine adds its delay to both (1.45× seen beside
    # busy loops, 2.5× on a quiet one), so the bound is the order, and each side no faster than its model
    assert comparison["e2e"]["speedup"] > 1
    for variant, model_ms in (("slow", 5 + 7 * 4), ("fast", 5 + 7 * 1)):
        level = next((tmp_path / variant).glob("level-*"))
        assert json.loads((level / "summary.json").read_text())["latency_ms"]["e2e"]["min"] >= model_ms * 0.999
    assert comparison["ttft"]["speedup"] is not None  # not streamed: TTFT is the whole answer's time
    assert comparison["tpot"]["speedup"] is None and "not streamed" in comparison["tpot"]["reason"]
