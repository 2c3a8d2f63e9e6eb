"""Reasoning streams (vLLM, SGLang, DeepSeek style: ``delta.reasoning_content`` before
``delta.content``): TTFT is the first token of any kind, TTFOT the answer's first; reasoning and
answer tokens are counted apart; TPOT counts every token. Against the simulator streaming its
first tokens as reasoning, the facts checked are the records' own stamps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadgen.cli import main
from loadgen.config import EndpointConfig
from loadgen.protocols import endpoint_codec
from tests.conftest import SimFactory

REASONING = 6


def test_ttfot_and_reasoning_tokens_against_the_simulator(start_sim: SimFactory, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    sim = start_sim("fixed:20,5", reasoning_tokens=REASONING)
    output = tmp_path / "run"
    code = main(["run", "--endpoint", sim.url, "--requests", "12", "--concurrency", "2", "--max-tokens", "16",
                 "--slo", "ttfot=10s", "--fail-on", "ttfot_p50>10s", "--output", str(output)])  # fmt: skip
    shown = " ".join(capsys.readouterr().out.split())
    assert code == 0
    records = [json.loads(line) for line in (output / "requests.jsonl").read_text().splitlines()]
    measured = [r for r in records if not r["warmup"]]
    for record in measured:  # the answer starts at the 7th chunk: the first 6 were thinking
        assert record["reasoning_tokens"] == REASONING  # the server's usage (completion_tokens_details)
        assert record["first_answer_ns"] == record["chunk_ns"][REASONING] > record["first_token_ns"]
        assert record["output_tokens"] == 16
    summary = json.loads((output / "summary.json").read_text())
    assert summary["tokens"]["reasoning_total"] == REASONING * len(measured)
    latency = summary["latency_ms"]
    assert latency["ttfot"]["count"] == latency["ttft"]["count"] == len(measured)
    assert latency["ttfot"]["min"] > latency["ttft"]["min"]
    assert summary["goodput"]["good_requests"] == len(measured)  # an SLO may name TTFOT
    assert "TTFOT (answer)" in shown and f"reasoning: {REASONING * len(measured)} tokens of thinking" in shown


def test_without_reasoning_ttfot_is_ttft_and_not_shown(start_sim: SimFactory, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    sim = start_sim("fixed:20,5")
    output = tmp_path / "run"
    assert main(["run", "--endpoint", sim.url, "--requests", "6", "--max-tokens", "8", "--output", str(output)]) == 0
    assert "TTFOT" not in capsys.readouterr().out
    records = [json.loads(line) for line in (output / "requests.jsonl").read_text().splitlines()]
    assert all(r["first_answer_ns"] == r["first_token_ns"] and r["reasoning_tokens"] is None for r in records)
    assert json.loads((output / "summary.json").read_text())["tokens"]["reasoning_total"] is None


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_a_stream_split_anywhere_keeps_reasoning_apart(field: str) -> None:
    """Both names vLLM has used; the bytes cut at every position give the same events."""
    from loadgen.prompts.model import Prompt
    from loadgen.protocols.base import ContentChunk, Usage

    codec = endpoint_codec(EndpointConfig(url="http://x", api="openai-chat"))
    frames = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        {"choices": [{"index": 0, "delta": {field: "Let me think"}}]},
        {"choices": [{"index": 0, "delta": {"content": "Paris"}}]},
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2,
                                  "completion_tokens_details": {"reasoning_tokens": 1}}},
    ]  # fmt: skip
    body = b"".join(f"data: {json.dumps(frame)}\n\n".encode() for frame in frames) + b"data: [DONE]\n\n"
    for cut in range(len(body) + 1):
        decoder = codec.decoder(True, Prompt(id="p", text="q"))
        events = decoder.feed(body[:cut]) + decoder.feed(body[cut:]) + decoder.close()
        chunks = [e for e in events if type(e) is ContentChunk]
        assert [(c.text, c.reasoning) for c in chunks] == [("Let me think", True), ("Paris", False)], cut
        assert [e.reasoning_tokens for e in events if type(e) is Usage] == [1]


def test_the_embedded_simulator_can_think_and_cache(tmp_path: Path) -> None:
    """With no endpoint: --sim-reasoning-tokens and --sim-prefix-cache reach the built-in simulator."""
    output = tmp_path / "run"
    assert main(["run", "--quiet", "--sim-reasoning-tokens", "4", "--sim-prefix-cache", "--requests", "6",
                 "--warmup", "0", "--max-tokens", "8", "--output", str(output)]) == 0  # fmt: skip
    tokens = json.loads((output / "summary.json").read_text())["tokens"]
    assert tokens["reasoning_total"] == 4 * 6 and tokens["cached_input_total"] is not None
