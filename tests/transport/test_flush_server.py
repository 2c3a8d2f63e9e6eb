"""loadgen against a server that writes and flushes every token's chunk on its own, as vLLM, TGI and
llama.cpp do: the C server of the capacity benchmark (``benchmarks/flush_server.c``), whose own count
of chunks written is the truth. Each stream shape loadgen reads there (OpenAI completions, chat with
vLLM's role-only first delta, TGI) must come out chunk for chunk; the benchmark's floor client
(``benchmarks/floor_client.c``) must count the same chunks, or its figures mean nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadgen.cli import main

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
USERS, REQUESTS, TOKENS = 4, 8, 48
APIS = ("openai-completions", "openai-chat", "tgi")


@pytest.fixture(scope="module")
def binaries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: the benchmark's C server cannot be built")
    directory = tmp_path_factory.mktemp("flush")
    built = {}
    for name in ("flush_server", "floor_client"):
        built[name] = directory / name
        subprocess.run(["gcc", "-O2", "-Wall", "-Werror", "-o", str(built[name]), str(BENCHMARKS / f"{name}.c")],
                       check=True)  # fmt: skip
    return built


@pytest.fixture(params=["0", "300"], ids=["flat-out", "paced"])
def server(request: pytest.FixtureRequest, binaries: dict[str, Path]) -> Iterator[str]:
    """The C server on a free port of 127.0.0.1: flat out, or paced at 300 µs per token per stream."""
    process = subprocess.Popen([str(binaries["flush_server"]), "0", request.param], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        yield f"http://127.0.0.1:{process.stdout.readline().split()[1]}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def chunks_written(url: str) -> int:
    with urllib.request.urlopen(f"{url}/count", timeout=10) as reply:
        return int(json.load(reply)["chunks"])


@pytest.mark.parametrize("api", APIS)
def test_every_flushed_chunk_is_counted(api: str, server: str, tmp_path: Path) -> None:
    code = main(["run", "--quiet", "--endpoint", server, "--api", api, "--concurrency", str(USERS),
                 "--requests", str(REQUESTS), "--max-tokens", str(TOKENS), "--warmup", "0",
                 "--output", str(tmp_path / "out")])  # fmt: skip
    assert code == 0
    records = [json.loads(line) for line in (tmp_path / "out" / "requests.jsonl").read_text().splitlines()]
    assert len(records) == REQUESTS
    for record in records:
        assert record["error_kind"] is None
        assert len(record["chunk_ns"]) == TOKENS  # chat's role-only first delta is no token
        assert record["output_tokens"] == TOKENS
        assert record["output_token_method"] == "server_usage"
        assert record["finish_reason"] == "length"
    # the preflight's answer (cut once its first token is in) is the only other thing written
    written = chunks_written(server)
    assert REQUESTS * TOKENS < written <= REQUESTS * TOKENS + TOKENS


@pytest.mark.parametrize("api", APIS)
def test_the_floor_client_counts_what_the_server_wrote(api: str, server: str, binaries: dict[str, Path]) -> None:
    port = server.rsplit(":", 1)[1]
    reply = subprocess.run([str(binaries["floor_client"]), port, str(USERS), str(REQUESTS // USERS), str(TOKENS),
                            "0", api], check=True, capture_output=True, text=True, timeout=60)  # fmt: skip
    figures = json.loads(reply.stdout)
    assert figures["chunks"] == REQUESTS * TOKENS == chunks_written(server)
    assert 0 < figures["stamped_reads"] <= figures["reads"]
