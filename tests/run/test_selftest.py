import json
from pathlib import Path

from loadgen.cli import main
from loadgen.run.selftest import RateResult


def test_held_means_within_one_percent_and_low_lag() -> None:
    assert RateResult(1000, 995, 0.02, 0.5).held
    assert not RateResult(1000, 980, 0.02, 0.5).held
    assert not RateResult(1000, 1000, 0.02, 6.0).held


def test_selftest_reports_streaming_and_rate_ceilings(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["selftest", "--duration", "0.5", "--output", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "selftest.json").read_text())
    assert report["cpus"] >= 1
    one_worker = {stream["server"]: stream for stream in report["streaming"] if stream["workers"] == 1}
    assert set(one_worker) == {"flush", "bulk"}  # a server that flushes every token, and one that writes in bulk
    assert all(stream["chunks_per_s"] > 1000 for stream in one_worker.values())
    assert report["rates"][0]["target_rps"] == 250
    assert all("held" in step for step in report["rates"])
    out = capsys.readouterr().out
    assert "ceiling of this box" in out and "from a server that flushes every token" in out
