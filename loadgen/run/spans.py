"""Run tier: a level's requests joined with the server's OpenTelemetry spans (``--server-timings
otlp``), by the trace id each request carried in its ``traceparent``.

A server exports a span when its request is done, in batches, so the join comes after the load:
the level waits (at most ``--otlp-wait``) for the spans of its completed requests, then each
record in ``requests.jsonl`` gets the server's account of it (``server_timings``; a span's
account stands over a response's own), and the level's ``server_timings`` section is counted
anew from the joined records. The file is rewritten beside and moved into place, so a stop in the
middle leaves the records as they were.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import orjson
from msgspec.structs import replace

from loadgen.errors import OutputError
from loadgen.metrics.results import RunSummary, ServerJoin
from loadgen.metrics.server_account import ServerTally, join_note
from loadgen.records import RequestRecord
from loadgen.run.collect import LevelSpec
from loadgen.run.events import Tone
from loadgen.run.target import Target
from loadgen.telemetry.otlp import LevelSpans


async def join_server_spans(target: Target, spec: LevelSpec, summary: RunSummary, other_before: int) -> RunSummary:
    """The level's summary with its server account from the joined spans."""
    receiver, tag = target.spans, spec.trace_tag
    if receiver is None or tag is None:
        return summary
    completed = summary.requests.completed or 0
    waited_s = await receiver.wait_for(tag, completed, target.plan.otlp_wait_s, target.stop)
    for problem in receiver.new_problems():
        target.events.say(f"warning: OTLP receiver: {problem} (answered 400; the run goes on)", Tone.WARNING)
    level = receiver.take(tag)
    tally, joined, unmatched = await asyncio.to_thread(join_records, spec.directory / "requests.jsonl", level)
    sent = completed + (summary.requests.failed or 0)
    join = ServerJoin(joined=joined, completed=completed, sent=sent,
                      rate=round(joined / completed, 4) if completed else None,
                      spans=len(level.spans), unmatched=unmatched,
                      other_traces=receiver.counts.other_traces - other_before, waited_s=round(waited_s, 3),
                      note=join_note(joined, completed, unmatched))  # fmt: skip
    if join.note:
        target.events.say(f"warning: {spec.label}: {join.note}", Tone.WARNING)
    return replace(summary, server_timings=tally.account(completed, join))


def join_records(path: Path, level: LevelSpans) -> tuple[ServerTally, int, int]:
    """Each record of ``path`` with its span's account, the file rewritten; the level's tally of
    the completed measured requests, how many of them a span joined, and the spans that matched
    no record."""
    tally, joined, matched = ServerTally(), 0, 0
    spans = level.spans
    if not path.is_file():
        return tally, 0, 0
    rewritten = path.with_name(path.name + ".joining")
    try:
        with path.open("rb") as source, rewritten.open("wb") as sink:
            for line in source:
                if not line.strip():
                    continue
                try:
                    data = orjson.loads(line)
                except orjson.JSONDecodeError:  # a line cut by a kill: kept as it is, joins nothing
                    sink.write(line)
                    continue
                timings = spans.get(data.get("trace_id") or "")
                if timings is not None:
                    matched += 1
                    data["server_timings"] = timings
                    line = orjson.dumps(data) + b"\n"
                sink.write(line if line.endswith(b"\n") else line + b"\n")
                if data.get("warmup") or data.get("error_kind") is not None or not data.get("server_timings"):
                    continue
                tally.count(RequestRecord.from_json_dict(data), data["server_timings"])
                joined += timings is not None
        os.replace(rewritten, path)
    except OSError as exc:
        rewritten.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write the records joined with the server's spans: "
                          f"{exc.strerror or exc}") from None  # fmt: skip
    return tally, joined, len(spans) - matched
