"""loadgen against a real vLLM (CPU wheel, tiny random Llama): both OpenAI APIs, streamed and not,
token counts from usage and from the model's tokenizer, server telemetry over the load window,
means held against vLLM's own histograms, a comparison with n-gram speculative decoding, and
multi-turn sessions against its prefix cache."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from loadgen.cli import main
from loadgen.prompts.synthetic import WORDS
from tests.vllm.conftest import VllmServers

HISTOGRAMS = {  # loadgen metric → vLLM's own histogram of the same thing (seconds)
    "ttft": "vllm:time_to_first_token_seconds",
    "tpot": "vllm:request_time_per_output_token_seconds",
    "itl": "vllm:inter_token_latency_seconds",
    "e2e": "vllm:e2e_request_latency_seconds",
}
TOLERANCE_MS = {"ttft": (5.0, 0.15), "tpot": (0.5, 0.10), "itl": (0.5, 0.10), "e2e": (10.0, 0.05)}  # abs + rel


def scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith(("_sum", "_count")):
                totals[sample.name] = totals.get(sample.name, 0.0) + float(sample.value)
    return totals


def run(tmp_path: Path, name: str, *args: str) -> dict:  # type: ignore[type-arg]
    output = tmp_path / name
    assert main(["run", "--quiet", *args, "--output", str(output)]) == 0
    return json.loads((output / "summary.json").read_text())  # type: ignore[no-any-return]


@pytest.mark.parametrize("api", ["openai-chat", "openai-completions"])
@pytest.mark.parametrize("stream", [True, False])
def test_both_openai_apis_streamed_and_not(vllm_servers: VllmServers, tmp_path: Path, api: str, stream: bool) -> None:
    summary = run(tmp_path, "r", "--endpoint", vllm_servers.url, "--api", api, "--concurrency", "2", "--requests",
                  "8", "--max-tokens", "24", "--ignore-eos", *(() if stream else ("--no-stream",)))  # fmt: skip
    assert summary["model"] == "tiny" and summary["requests"] == {**summary["requests"], "completed": 8, "failed": 0}
    assert summary["token_counting"]["output_method"] == "server_usage"
    assert summary["tokens"]["output_total"] == 8 * 24  # --ignore-eos: every answer is max tokens long
    latency = summary["latency_ms"]
    if stream:
        assert latency["tpot"]["count"] == 8 and latency["itl"]["count"] == 8 * 23
    else:  # a whole answer says nothing per token: no TPOT or ITL is claimed
        assert latency["tpot"]["count"] == 0 and latency["itl"]["count"] == 0
    assert summary["validity"]["verdict"] in ("valid", "client_saturated", "host_busy")


def test_sweep_with_server_telemetry_and_the_models_tokenizer(vllm_servers: VllmServers, tmp_path: Path) -> None:
    output, tokenizer = tmp_path / "sweep", str(vllm_servers.model_dir / "tokenizer.json")
    synthetic = "input=64,output=48,count=16"
    assert main(["sweep", "--quiet", "--endpoint", vllm_servers.url, "--api", "openai-completions", "--concurrency",
                 "1,4", "--requests", "16", "--max-tokens", "48", "--ignore-eos", "--telemetry", "server",
                 "--tokenizer", tokenizer, "--synthetic", synthetic, "--output", str(output)]) == 0  # fmt: skip
    levels = json.loads((output / "sweep.json").read_text())["levels"]
    for level in levels:
        # prompts cut at 64 of the model's own tokens: vLLM's usage counts exactly 64 for each
        records = [json.loads(line) for line in next(output.glob(f"level-*-c{level['load']['concurrency']}"))
                   .joinpath("requests.jsonl").read_text().splitlines()]  # fmt: skip
        assert {record["input_tokens"] for record in records} == {64}
        # the output re-encoded by the tokenizer beside the server's count: reported, not assumed equal (a
        # random model's token sequence re-tokenizes into more tokens than it generated)
        assert level["token_counting"]["comparisons"]["tokenizer_vs_server_usage"]["server_usage_tokens"] == 16 * 48
        server = level["telemetry"]["server"]
        users = level["load"]["concurrency"]
        # means over the measured window only: no idle time before or after the load pulls them down
        assert server["requests_running"]["mean"] >= 0.75 * users, server["requests_running"]
        assert server["kv_cache_usage_percent"]["max"] > 0


def test_means_match_vllms_own_histograms(vllm_servers: VllmServers, tmp_path: Path) -> None:
    before = scrape(vllm_servers.url)
    summary = run(tmp_path, "r", "--endpoint", vllm_servers.url, "--api", "openai-completions", "--concurrency", "4",
                  "--requests", "32", "--max-tokens", "64", "--ignore-eos", "--warmup", "0",
                  "--telemetry", "server")  # fmt: skip
    after = scrape(vllm_servers.url)
    lines = []
    for metric, histogram in HISTOGRAMS.items():
        count = after[f"{histogram}_count"] - before.get(f"{histogram}_count", 0.0)
        server_ms = 1000 * (after[f"{histogram}_sum"] - before.get(f"{histogram}_sum", 0.0)) / count
        ours = summary["latency_ms"][metric]["mean"]
        absolute, relative = TOLERANCE_MS[metric]
        lines.append(f"{metric}: loadgen {ours:.3f} ms, vLLM {server_ms:.3f} ms, difference {ours - server_ms:+.3f} ms")
        assert abs(ours - server_ms) <= absolute + relative * server_ms, lines[-1]
        # loadgen reads the same histograms itself (--telemetry server), over the level's window
        own = summary["telemetry"]["server"]["own_latency_ms"][metric]["mean"]
        assert abs(own - server_ms) <= absolute + relative * server_ms, (metric, own, server_ms)
    print("\n".join(lines))  # shown with -s: the figures quoted in the README


def test_compare_with_ngram_speculative_decoding(vllm_servers: VllmServers, tmp_path: Path) -> None:
    output = tmp_path / "compare"
    assert main(["compare", "--quiet", "--variant", f"base={vllm_servers.url}", "--variant",
                 f"ngram={vllm_servers.speculative_url}", "--api", "openai-completions", "--concurrency", "2",
                 "--requests", "8", "--max-tokens", "48", "--ignore-eos", "--warmup", "0", "--output",
                 str(output)]) == 0  # fmt: skip
    level = json.loads((output / "compare.json").read_text())["levels"][0]["comparison"]
    assert level["requests"]["candidate"] == {"completed": 8, "failed": 0}, level["requests"]
    assert level["candidate_acceptance_rate"] is not None  # vLLM's own draft counters, scraped around the level
    assert level["e2e"]["speedup"] is not None


def test_a_session_turn_by_turn_against_vllms_prefix_cache(vllm_servers: VllmServers, tmp_path: Path) -> None:
    """Each turn resends the history: vLLM's own usage reports more of each later turn's prompt
    served from its prefix cache (whole 16-token blocks), turn after turn."""
    turns = [{"user": " ".join(WORDS[(turn * 5 + k) % len(WORDS)] for k in range(40)), "max_tokens": 16}
             for turn in range(4)]  # fmt: skip
    sessions = tmp_path / "sessions.jsonl"
    sessions.write_text(json.dumps({"id": "s", "turns": turns}) + "\n")
    summary = run(tmp_path, "sessions", "--endpoint", vllm_servers.url, "--sessions", str(sessions),
                  "--concurrency", "1", "--requests", "8", "--warmup", "0", "--ignore-eos")  # fmt: skip
    records = [json.loads(line) for line in (tmp_path / "sessions" / "requests.jsonl").read_text().splitlines()]
    for instance in {r["session"] for r in records}:
        runs = sorted((r for r in records if r["session"] == instance), key=lambda r: r["turn"])
        prompts = [r["input_tokens"] for r in runs]
        cached = [r["cached_input_tokens"] for r in runs]
        assert prompts == sorted(prompts) and len(set(prompts)) == len(prompts), runs  # the history grows
        assert all(value is not None for value in cached), runs  # vLLM said (--enable-prompt-tokens-details)
        assert cached[1:] == sorted(cached[1:]) and cached[-1] > cached[1] > 0, runs  # more of it cached each turn
        assert all(c < p for c, p in zip(cached, prompts, strict=True))
    by_turn = {t["turn"]: t for t in summary["turns"]}
    assert by_turn[4]["cached_input_tokens_mean"] > by_turn[2]["cached_input_tokens_mean"] > 0


def test_every_request_joined_with_vllms_own_span(vllm_servers: VllmServers, tmp_path: Path) -> None:
    """vLLM exports each request's span (``--otlp-traces-endpoint`` at loadgen's receiver); loadgen
    joins them by the trace id of its ``traceparent``: nearly every request, its server TTFT within
    loadgen's, and the level's queue + prefill as vLLM's own histograms count them, same requests."""
    queue, prefill = "vllm:request_queue_time_seconds", "vllm:request_prefill_time_seconds"
    before = scrape(vllm_servers.url)
    summary = run(tmp_path, "otlp", "--endpoint", vllm_servers.url, "--api", "openai-completions", "--concurrency",
                  "2", "--requests", "16", "--max-tokens", "16", "--ignore-eos", "--warmup", "0", "--server-timings",
                  "otlp", "--otlp-listen", f"127.0.0.1:{vllm_servers.otlp_port}")  # fmt: skip
    after = scrape(vllm_servers.url)
    account = summary["server_timings"]
    join = account["join"]
    assert join["joined"] >= 0.95 * join["completed"] and join["completed"] == 16, join
    records = [json.loads(line) for line in (tmp_path / "otlp" / "requests.jsonl").read_text().splitlines()]
    for record in records:
        timings = record["server_timings"]
        if timings is None:
            continue
        assert timings["source"] == "OpenTelemetry span (gen_ai.latency)"
        client_ttft_ms = (record["first_token_ns"] - record["intended_ns"]) / 1e6
        assert timings["ttft_ms"] <= client_ttft_ms, (timings, client_ttft_ms)
    # the same requests: the preflight (cut at its first token, an abort) is in neither
    count = after[f"{queue}_count"] - before.get(f"{queue}_count", 0.0)
    assert count == join["completed"] == join["joined"], (count, join)
    vllm_ms = 1000 * sum(after[f"{name}_sum"] - before.get(f"{name}_sum", 0.0) for name in (queue, prefill)) / count
    ours_ms = account["queue_ms"]["mean"] + account["prefill_ms"]["mean"]
    line = f"queue + prefill: loadgen {ours_ms:.3f} ms, vLLM's histograms {vllm_ms:.3f} ms"
    print(line)
    assert abs(ours_ms - vllm_ms) <= 1.0, line


def test_spans_over_grpc_as_vllm_exports_them_by_default(vllm_servers: VllmServers, tmp_path: Path) -> None:
    """The n-gram server exports over gRPC (vLLM's default OTLP protocol) to ``--otlp-grpc-listen``."""
    summary = run(tmp_path, "grpc", "--endpoint", vllm_servers.speculative_url, "--api", "openai-completions",
                  "--concurrency", "2", "--requests", "8", "--max-tokens", "16", "--ignore-eos", "--server-timings",
                  "otlp", "--otlp-listen", "127.0.0.1:0", "--otlp-grpc-listen",
                  f"127.0.0.1:{vllm_servers.otlp_grpc_port}")  # fmt: skip
    join = summary["server_timings"]["join"]
    assert join["joined"] >= 0.95 * join["completed"] and join["completed"] == 8, join
    assert summary["server_timings"]["sources"] == {"OpenTelemetry span (gen_ai.latency)": join["joined"]}
