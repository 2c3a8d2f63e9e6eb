"""Telemetry layer: the sidecar process (``python -m loadgen.telemetry.child CONFIG_JSON``).

It runs the sampler outside the load generator's process, so a slow scrape or a parse of a large
metrics page never holds the client's interpreter lock. It writes every sample to the file named
in the config and speaks one JSON line per command on stdin/stdout:
``sample`` → ``{"ok": true}`` after one poll; ``stats`` → ``{"stats": …}``; ``stop`` (or end of
input) → the final ``{"stats": …}``.
Its first line is ``{"ready": true, "unavailable": {…}}``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from loadgen.config import TelemetryConfig
from loadgen.telemetry.catalog import build_sources, sampler_info
from loadgen.telemetry.model import Sample
from loadgen.telemetry.sampler import Sampler


def main() -> None:
    settings = json.loads(sys.argv[1])
    fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in settings["config"].items()}
    config = TelemetryConfig(**fields)
    # never through a symbolic link planted where the results go
    descriptor = os.open(settings["output"], os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    with os.fdopen(descriptor, "a", encoding="utf-8", buffering=1) as output:

        def write(sample: Sample) -> None:
            output.write(json.dumps(sample.to_json_dict(), separators=(",", ":")) + "\n")

        sources = build_sources(config, settings["endpoint_url"], settings["client_pid"])
        sampler = Sampler(sources, config.interval_s, write)
        reply({"ready": True, "unavailable": sampler.start()})
        for line in sys.stdin:
            command = line.strip()
            if command == "sample":
                sampler.sample_now()
                reply({"ok": True})
            elif command == "stats":
                reply({"stats": sampler_info(sampler)})
            elif command == "stop":
                break
        sampler.stop()
    reply({"stats": sampler_info(sampler)})


def reply(message: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
