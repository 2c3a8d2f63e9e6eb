"""The simulator's prefix cache (``--prefix-cache``): a prompt's leading 16-token blocks seen
before skip prefill, the server's usage says how many prompt tokens were cached, and loadgen's
summary adds them up."""

from __future__ import annotations

import json
from pathlib import Path

from loadgen.cli import main
from loadgen.hardware.roofline import RooflineProfile
from loadgen.sim.batching import PREFIX_BLOCK_TOKENS, BatchingEngine, Sequence, prefix_blocks
from loadgen.sim.profiles import get_profile
from tests.conftest import SimFactory


def test_a_cached_prefix_skips_its_prefill() -> None:
    profile = get_profile("llama2-7b-h100")
    assert isinstance(profile, RooflineProfile)
    engine = BatchingEngine(profile, prefix_cache=True)
    shared = [f"w{i}" for i in range(40)]  # 2 whole blocks and 8 words
    first = Sequence(60, 4, blocks=prefix_blocks([*shared, *(f"a{i}" for i in range(20))]))
    second = Sequence(60, 4, blocks=prefix_blocks([*shared, *(f"b{i}" for i in range(20))]))
    engine.submit(first)
    assert engine._admit() == 60  # cold: the whole prompt
    engine.submit(second)
    assert engine._admit() == 60 - 2 * PREFIX_BLOCK_TOKENS  # the shared whole blocks are not computed again
    assert (first.cached_tokens, second.cached_tokens) == (0, 32)
    other = Sequence(60, 4, blocks=prefix_blocks([f"z{i}" for i in range(60)]))
    engine.submit(other)
    assert engine._admit() == 60  # a block is reused only behind the same prefix
    without = BatchingEngine(profile)
    without.submit(Sequence(60, 4, blocks=second.blocks))
    assert without._admit() == 60


def test_shared_prefixes_are_cached_and_counted(start_sim: SimFactory, tmp_path: Path) -> None:
    sim = start_sim("llama2-7b-h100", prefix_cache=True)
    output = tmp_path / "run"
    assert main(["run", "--quiet", "--endpoint", sim.url, "--concurrency", "1", "--requests", "8", "--warmup", "0",
                 "--synthetic", "input=400,output=4,prefixes=2,prefix_len=320,count=8",
                 "--output", str(output)]) == 0  # fmt: skip
    records = [json.loads(line) for line in (output / "requests.jsonl").read_text().splitlines()]
    cached = [r["cached_input_tokens"] for r in sorted(records, key=lambda r: r["index"])]
    # each prefix is cold the first time it is seen (the preflight sends the first prompt before the
    # load, and caches it whole), then its 20 blocks are cached: 320 tokens, or all but the last
    # token for the preflight's own prompt
    assert set(cached) <= {0, 320, 399} and cached.count(320) >= 5, cached
    summary = json.loads((output / "summary.json").read_text())
    assert summary["tokens"]["cached_input_total"] == sum(cached)
