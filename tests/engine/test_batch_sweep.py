"""A batch-size sweep against the simulator: a list of prompts per request, one sequence each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadgen.cli import main
from tests.conftest import SimFactory


def test_batch_size_sweep(start_sim: SimFactory, tmp_path: Path) -> None:
    sim = start_sim("fixed:20,5")
    output = tmp_path / "batches"
    code = main(["sweep", "--quiet", "--endpoint", sim.url, "--api", "openai-completions", "--no-stream",
                 "--batch-size", "1,4", "--requests", "6", "--max-tokens", "10", "--output", str(output)])  # fmt: skip
    assert code == 0
    one, four = json.loads((output / "sweep.json").read_text())["levels"]
    assert (one["load"]["batch_size"], four["load"]["batch_size"]) == (1, 4)
    assert four["tokens"]["output_total"] == 4 * one["tokens"]["output_total"] == 4 * 6 * 10
    assert four["throughput"]["sequences_per_s"] == pytest.approx(4 * four["throughput"]["requests_per_s"], rel=1e-3)
    assert four["latency_ms"]["tpot"]["count"] == 0  # answers read whole: no per-token timing claimed
    assert four["latency_ms"]["e2e"]["min"] >= 20 + 9 * 5  # never faster than the server's 20 ms + 9 × 5 ms


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--api", "openai-chat", "--no-stream"], "takes one prompt per request"),
     (["--api", "openai-completions"], "add --no-stream"),
     (["--api", "openai-completions", "--no-stream", "--concurrency", "1,2"], "holds the load at one")],
)  # fmt: skip
def test_batch_size_misuse(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert main(["sweep", "--batch-size", "1,4", "--endpoint", "http://127.0.0.1:9", *args]) == 2
    assert message in " ".join(capsys.readouterr().err.split())
