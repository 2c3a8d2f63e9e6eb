"""``--server-timings otlp`` end to end: each request carries a ``traceparent``, the server (the
simulator, exporting spans as vLLM does) sends its spans to loadgen's receiver, and every record is
joined with its server's own account, exactly; the breakdown of TTFT adds up; a join that is not
whole says so; ``off`` sends nothing."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
from aiohttp import ClientSession, web

from loadgen.cli import main
from loadgen.metrics.results import ServerAccount, read_summary
from loadgen.metrics.server_account import breakdown_growth
from loadgen.protocols.otlp import encode_spans
from loadgen.report.export import summary_row
from loadgen.run.spans import join_records
from loadgen.telemetry.otlp import LevelSpans
from tests.conftest import SimFactory, fetch_json, free_port
from tests.threaded_server import chat_app, serve_in_thread

TRACEPARENT = re.compile(r"^00-([0-9a-f]{16})([0-9a-f]{4})([01f])([0-9a-f]{11})-([0-9a-f]{16})-01$")


def records(directory: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (directory / "requests.jsonl").read_text().splitlines()]


def run_with_spans(url: str, listen: str, output: Path, *flags: str) -> int:
    return main(["run", "--endpoint", url, "--server-timings", "otlp", "--otlp-listen", listen, "--max-tokens", "16",
                 *flags, "--output", str(output)])  # fmt: skip


def test_every_request_joins_its_simulator_span_exactly(start_sim: SimFactory, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    port = free_port()
    sim = start_sim("llama2-7b-h100", keep_log=True, otlp_endpoint=f"http://127.0.0.1:{port}/v1/traces")
    output = tmp_path / "run"
    assert run_with_spans(sim.url, f"127.0.0.1:{port}", output, "--concurrency", "4", "--requests", "24") == 0
    spans = {entry["trace_id"]: entry["span"] for entry in fetch_json(f"{sim.url}/sim/log")}  # type: ignore[union-attr]
    measured = [record for record in records(output) if not record["warmup"]]
    assert len(measured) == 24
    for record in measured:  # the server's own figures, to the last digit, on the request that caused them
        span, timings = spans[record["trace_id"]], record["server_timings"]
        assert timings["source"] == "OpenTelemetry span (gen_ai.latency)"
        for part, attribute in (("queue_ms", "time_in_queue"), ("prefill_ms", "time_in_model_prefill"),
                                ("decode_ms", "time_in_model_decode"), ("ttft_ms", "time_to_first_token"),
                                ("total_ms", "e2e")):  # fmt: skip
            assert timings[part] == pytest.approx(span[f"gen_ai.latency.{attribute}"] * 1e3, rel=1e-12), part
    account = ServerAccount.from_json(json.loads((output / "summary.json").read_text())["server_timings"])
    assert account.join is not None and (account.join.joined, account.join.completed, account.join.sent) == (24, 24, 24)
    assert (account.join.rate, account.join.unmatched, account.join.note) == (1.0, 0, None)
    assert account.join.spans == 24 + 4  # and the warm-up requests' own
    # the parts' means add up to the mean TTFT loadgen measured (transit is what is left, never below 0)
    ttft_mean = sum((r["first_token_ns"] - r["intended_ns"]) / 1e6 for r in measured) / 24  # type: ignore[operator]
    parts = ("client_overhead_ms", "transit_ms", "frontend_ms", "queue_ms", "prefill_ms")
    assert account.transit_negative == 0
    assert sum(account.mean(part) or 0 for part in parts) == pytest.approx(ttft_mean, abs=0.01)
    shown = " ".join(capsys.readouterr().out.split())
    assert (
        "where TTFT went (means): client " in shown
        and "OTLP join: 24 of 24 completed requests (100%; 24 sent)" in shown
    )
    summary = read_summary(output / "summary.json")
    row = summary_row(output, summary)  # the CSV export says the same
    assert row["server_join_rate"] == 1.0 and row["queue_mean_ms"] == account.mean("queue_ms")


def test_the_embedded_simulator_and_worker_processes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "sweep"
    assert (
        main(
            [
                "sweep",
                "--server-timings",
                "otlp",
                "--concurrency",
                "1,8",
                "--requests",
                "16",
                "--max-tokens",
                "16",
                "--workers",
                "2",
                "--output",
                str(output),
            ]
        )
        == 0
    )
    sweep = json.loads((output / "sweep.json").read_text())
    traces = []
    for level, directory in zip(sweep["levels"], sorted(output.glob("level-*")), strict=True):
        assert level["server_timings"]["join"]["rate"] == 1.0 and level["server_timings"]["join"]["unmatched"] == 0
        traces += [record["trace_id"] for record in records(directory)]
    assert len(set(traces)) == len(traces) == (16 + 1) + (16 + 8)  # a trace per request, warm-up ones too
    assert len(sweep["ttft_growth"]) == 1 and sweep["ttft_growth"][0].startswith("c=1 → c=8: TTFT mean ")
    shown = capsys.readouterr().out
    assert "where TTFT went per level" in shown and sweep["ttft_growth"][0] in " ".join(shown.split())


def test_each_request_carries_a_traceparent_and_off_sends_none(tmp_path: Path) -> None:
    seen: list[str | None] = []

    async def completions(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("traceparent"))
        body = (
            b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
            b'data: {"choices":[],"timings":{"prompt_ms":3.5,"predicted_ms":7.25}}\n\ndata: [DONE]\n\n'
        )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(body)
        return response

    with serve_in_thread(chat_app(completions)) as url:
        assert main(["run", "--quiet", "--endpoint", url, "--requests", "4", "--warmup", "1", "--concurrency", "1",
                     "--output", str(tmp_path / "auto")]) == 0  # fmt: skip
        sent = [TRACEPARENT.match(header or "") for header in seen]
        assert all(sent) and len({match.group(1) for match in sent if match}) == 1  # one command
        kinds = [(match.group(2), match.group(3), int(match.group(4), 16)) for match in sent if match]
        assert kinds == [("0000", "f", 2**44 - 1), ("0001", "1", 0), *(("0001", "0", i) for i in range(1, 5))]
        assert [r["trace_id"] for r in records(tmp_path / "auto")] == [m.group(0)[3:35] for m in sent[1:] if m]
        assert records(tmp_path / "auto")[-1]["server_timings"]["prefill_ms"] == 3.5
        seen.clear()
        assert main(["run", "--quiet", "--endpoint", url, "--requests", "2", "--server-timings", "off",
                     "--output", str(tmp_path / "off")]) == 0  # fmt: skip
    assert seen and set(seen) == {None}
    assert {(r["trace_id"], r["server_timings"]) for r in records(tmp_path / "off")} == {(None, None)}
    assert (
        "server_timings" not in json.loads((tmp_path / "off" / "summary.json").read_text())
        or json.loads((tmp_path / "off" / "summary.json").read_text())["server_timings"] is None
    )


def test_a_server_that_sends_no_spans_is_said(start_sim: SimFactory, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    sim = start_sim("fixed:5,1")
    output = tmp_path / "run"
    assert run_with_spans(sim.url, "127.0.0.1:0", output, "--otlp-wait", "0.2", "--requests", "8") == 0
    join = json.loads((output / "summary.json").read_text())["server_timings"]["join"]
    assert (join["joined"], join["completed"], join["rate"]) == (0, 8, 0.0)
    assert join["note"].startswith("only 0 of 8 completed requests (0%) joined with a server span (under 95%)")
    shown = " ".join(capsys.readouterr().out.split())
    assert "Receiving OpenTelemetry spans at http://127.0.0.1:" in shown and "warning: concurrency" in shown
    assert "only 0 of 8 completed requests" in shown
    assert main(["report", str(output), "--output", str(tmp_path / "report.html")]) == 0  # the report says it too
    assert "only 0 of 8 completed requests (0%) joined" in (tmp_path / "report.html").read_text()


def test_a_bad_export_during_a_run_is_said_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A server whose exporter sends a body that is not an OTLP export with every request: the
    receiver answers 400, the console says it once, the spans that are good still join."""
    port = free_port()

    async def completions(request: web.Request) -> web.StreamResponse:
        trace_id = (request.headers.get("traceparent") or "00-" + "0" * 32).split("-")[1]
        good = encode_spans([(trace_id, "", "1" * 16, 1, 2, {"gen_ai.latency.time_in_queue": 0.001})], "x")
        async with ClientSession() as session:
            for body, kind in ((b"{", "application/json"), (good, "application/x-protobuf")):
                async with session.post(f"http://127.0.0.1:{port}/v1/traces", data=body,
                                        headers={"Content-Type": kind}) as reply:  # fmt: skip
                    await reply.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'data: {"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"stop"}]}\n\n'
                             b"data: [DONE]\n\n")  # fmt: skip
        return response

    with serve_in_thread(chat_app(completions)) as url:
        assert run_with_spans(url, f"127.0.0.1:{port}", tmp_path / "run", "--requests", "6", "--warmup", "0") == 0
    shown = capsys.readouterr().out
    said = [line for line in shown.splitlines() if "OTLP receiver" in line]
    assert len(said) == 1 and said[0].startswith("warning: OTLP receiver: OTLP JSON export does not parse")
    join = json.loads((tmp_path / "run" / "summary.json").read_text())["server_timings"]["join"]
    assert (join["joined"], join["completed"]) == (6, 6)


def test_join_records_keeps_a_cut_line_and_counts_what_matched(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    base = {"index": 0, "prompt_id": "p", "warmup": False, "intended_ns": 0, "sent_ns": 1_000_000,
            "first_byte_ns": 5_000_000, "first_token_ns": 9_000_000, "end_ns": 20_000_000, "chunk_ns": [9_000_000],
            "chunk_tokens": None, "input_tokens": 3, "input_token_method": "server_usage", "output_tokens": 1,
            "output_token_method": "server_usage", "usage_output_tokens": 1, "tokenizer_output_tokens": None,
            "finish_reason": "length", "error_kind": None, "error": None, "http_status": 200}  # fmt: skip
    lines = [json.dumps({**base, "trace_id": "a" * 32}), json.dumps({**base, "index": 1, "trace_id": "b" * 32}),
             '{"index": 2, "prompt_id": "p", "war']  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    timings = {"source": "s", "queue_ms": 1.0, "prefill_ms": 4.0, "ttft_ms": 6.0}
    tally, joined, unmatched = join_records(path, LevelSpans({"a" * 32: timings, "c" * 32: timings}, 1))
    assert (joined, unmatched, tally.requests) == (1, 1, 1)
    written = path.read_text().splitlines()
    assert json.loads(written[0])["server_timings"] == timings and "server_timings" not in written[1]
    assert written[2] == lines[2]
    account = tally.account(2)
    assert account is not None and account.mean("client_overhead_ms") == 1.0 and account.mean("transit_ms") == 2.0
    assert account.mean("frontend_ms") == 1.0  # server TTFT 6 − queue 1 − prefill 4


def test_growth_names_the_part_that_grew_most() -> None:
    def account(queue: float, prefill: float) -> ServerAccount:
        return ServerAccount.from_json({"requests": 1, "client_overhead_ms": {"count": 1, "mean": 0.5},
                                        "queue_ms": {"count": 1, "mean": queue},
                                        "prefill_ms": {"count": 1, "mean": prefill}})  # fmt: skip

    assert breakdown_growth([("c=1", account(0.1, 5.0)), ("c=2", None), ("c=8", account(9.1, 6.0))]) == (
        "c=1 → c=8: TTFT mean +10.00 ms, most of it queue (+9.00 ms; client +0.00, prefill +1.00)",)  # fmt: skip


def test_a_receiver_port_in_use_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["run", "--server-timings", "otlp", "--otlp-listen", f"127.0.0.1:{port}", "--requests", "2",
                     "--output", str(tmp_path / "x")]) == 2  # fmt: skip
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"loadgen: error: --otlp-listen 127.0.0.1:{port}: cannot listen (") and "\n" not in error


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--otlp-listen", "127.0.0.1:4318"], "--otlp-listen is where OTLP spans are received: give --server-timings"),
        (["--server-timings", "otlp", "--otlp-listen", "nowhere"], "expected HOST:PORT"),
        (["--server-timings", "spans"], "expected one of auto, otlp, off"),
    ],
)
def test_bad_options_are_one_line(flags: list[str], says: str, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    assert main(["run", "--requests", "1", *flags, "--output", str(tmp_path / "x")]) == 2
    error = capsys.readouterr().err.strip()
    assert says in error and len(error.splitlines()) == 1 and "Traceback" not in error
