"""loadgen against a real Triton server: HTTP generate_stream, gRPC streaming and unary, KServe
infer with dynamic batching, Triton's metrics, and the checks made before any load is sent.

The test models (model_server.py) answer after TTFT_MS and then one token every ITL_MS; measured
latencies are checked against those known delays. pytriton's own proxy adds a few milliseconds,
hence the one-sided margins."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from loadgen.cli import main
from tests.triton.conftest import TritonServer

TOKENS = 12


def run(tmp_path: Path, name: str, *args: str) -> tuple[int, dict[str, Any]]:
    output = tmp_path / name
    code = main(["run", "--quiet", "--output", str(output), *args])
    summary = output / "summary.json"
    return code, json.loads(summary.read_text()) if summary.exists() else {}


@pytest.mark.parametrize("api", ["triton-generate", "triton-grpc"])
@pytest.mark.parametrize("concurrency", [1, 16])
def test_streaming_latencies_match_the_model(
    triton_server: TritonServer, tmp_path: Path, api: str, concurrency: int
) -> None:
    url = triton_server.grpc_url if api == "triton-grpc" else triton_server.http_url
    requests = 6 if concurrency == 1 else 32
    code, summary = run(tmp_path, "stream", "--api", api, "--endpoint", url, "--model", "stream",
                        "--concurrency", str(concurrency), "--requests", str(requests),
                        "--max-tokens", str(TOKENS))  # fmt: skip
    assert code == 0
    assert summary["requests"]["completed"] == requests and summary["requests"]["failed"] == 0
    assert summary["tokens"]["output_total"] == requests * TOKENS
    latency = summary["latency_ms"]
    ttft, itl = triton_server.ttft_ms, triton_server.itl_ms
    expected_e2e = ttft + (TOKENS - 1) * itl
    # never faster than the model: loadgen cannot see a token before the server makes it (the gaps
    # between tokens have no such bound: a proxy that falls behind delivers two at once)
    assert ttft - 1 <= latency["ttft"]["min"] and ttft <= latency["ttft"]["p50"]
    assert expected_e2e - 1 <= latency["e2e"]["min"]
    assert latency["itl"]["count"] == requests * (TOKENS - 1) and latency["tpot"]["count"] == requests
    # no upper bounds here: pytriton's Python proxy itself falls behind the model on a busy machine
    # (ITL p50 29-40 ms for a 20 ms model at 16 streams), so they would test the server's speed;
    # loadgen's own error is held against servers that log their send times (the lean simulator's
    # test in tests/engine, benchmarks/truth.py)


@pytest.mark.parametrize("api", ["triton-generate", "triton-grpc"])
def test_errors_mid_stream_are_counted_and_the_run_goes_on(
    triton_server: TritonServer, tmp_path: Path, api: str
) -> None:
    url = triton_server.grpc_url if api == "triton-grpc" else triton_server.http_url
    # the preflight is sent with 2 tokens, so failing after 3 spares it
    code, summary = run(tmp_path, "fail", "--api", api, "--endpoint", url, "--model", "stream", "--concurrency", "2",
                        "--requests", "6", "--max-tokens", "8", "--extra-body", '{"fail_after": 3}')  # fmt: skip
    assert code == 3  # counted, the run goes on, and with no request completed it says so in its exit code
    assert summary["requests"]["failed"] == 6
    assert summary["requests"]["errors_by_kind"] == {"server_error": 6}
    assert "failed after 3 tokens" in summary["requests"]["first_error_by_kind"]["server_error"]


def test_grpc_unary_model(triton_server: TritonServer, tmp_path: Path) -> None:
    code, summary = run(tmp_path, "unary", "--api", "triton-grpc", "--endpoint", triton_server.grpc_url,
                        "--model", "text", "--no-stream", "--requests", "4", "--max-tokens", str(TOKENS))  # fmt: skip
    assert code == 0 and summary["requests"]["completed"] == 4
    expected = triton_server.ttft_ms + (TOKENS - 1) * triton_server.itl_ms
    assert summary["latency_ms"]["ttft"]["p50"] == summary["latency_ms"]["e2e"]["p50"]
    assert expected <= summary["latency_ms"]["e2e"]["p50"]  # never faster than the model


def test_infer_sweep_reports_the_server_batch(triton_server: TritonServer, tmp_path: Path) -> None:
    output = tmp_path / "sweep"
    code = main(["sweep", "--quiet", "--output", str(output), "--api", "triton-infer", "--endpoint",
                 triton_server.http_url, "--model", "batched", "--concurrency", "1,8", "--requests", "16",
                 "--max-tokens", "4", "--server-metrics", triton_server.metrics_url])  # fmt: skip
    assert code == 0
    sweep = json.loads((output / "sweep.json").read_text())
    one, eight = (level["server"]["model"] for level in sweep["levels"])
    assert one["average_batch_size"] == 1.0
    assert eight["average_batch_size"] > 2.0
    assert one["requests_succeeded"] >= 16 and one["requests_failed"] == 0
    split = eight["per_request_ms"]
    assert split["compute_infer"] >= triton_server.ttft_ms + 3 * triton_server.itl_ms - 1
    assert split["queue"] > 0


def test_batch_size_sweep_fills_the_batch_dimension(triton_server: TritonServer, tmp_path: Path) -> None:
    output = tmp_path / "batches"
    code = main(["sweep", "--quiet", "--output", str(output), "--api", "triton-grpc", "--endpoint",
                 triton_server.grpc_url, "--model", "batched", "--no-stream", "--batch-size", "1,4", "--requests", "6",
                 "--max-tokens", "4", "--server-metrics", triton_server.metrics_url])  # fmt: skip
    assert code == 0
    one, four = json.loads((output / "sweep.json").read_text())["levels"]
    assert one["server"]["model"]["average_batch_size"] == 1.0
    assert four["server"]["model"]["average_batch_size"] == 4.0  # one request of 4 prompts, one execution
    assert four["throughput"]["sequences_per_s"] > 3 * one["throughput"]["sequences_per_s"]


def test_token_id_model_with_a_tokenizer(triton_server: TritonServer, tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["the", "a", "of", "and", "to", "in", "is", "you", "that", "it", "what", "how", "why", "explain", "write"]
    tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0, **{w: i + 1 for i, w in enumerate(words)}}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    code, summary = run(tmp_path, "ft", "--api", "triton-grpc", "--endpoint", triton_server.grpc_url, "--model", "ft",
                        "--triton", "preset=fastertransformer", "--tokenizer", str(tmp_path / "tokenizer.json"),
                        "--no-stream", "--requests", "3", "--max-tokens", "5")  # fmt: skip
    assert code == 0
    assert summary["tokens"]["output_total"] == 15


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--api", "triton-generate", "--model", "nope"], "has no model 'nope' ready"),
        (["--api", "triton-grpc", "--model", "nope"], "has no model 'nope' ready"),
        (["--api", "triton-grpc", "--model", "stream", "--triton", "text_input=prompt"], "has no input 'prompt'"),
        (["--api", "triton-infer", "--model", "stream"], "decoupled"),
        (["--api", "triton-infer", "--model", "ft", "--triton", "preset=fastertransformer"], "give --tokenizer"),
        (["--api", "triton-generate", "--model", "text", "--model-version", "7"], "version 7"),
    ],
)
def test_wrong_model_or_tensor_is_one_line_before_any_load(
    triton_server: TritonServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    url = triton_server.grpc_url if "triton-grpc" in args else triton_server.http_url
    code = main(["run", "--quiet", "--output", str(tmp_path / "x"), "--endpoint", url, *args])
    error = capsys.readouterr().err
    assert code != 0
    assert message in " ".join(error.split())
    assert "Traceback" not in error
    assert not (tmp_path / "x" / "requests.jsonl").exists()
