"""``python -m loadgen.sim``: the simulator as a child process (used by ``SimProcess``)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading

from loadgen.eventloop import run_loop
from loadgen.sim.process import API_KEY_ENV, SimSpec, serve
from loadgen.sim.server import SimOptions


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m loadgen.sim")
    parser.add_argument("--profile", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--model", default="sim-llm")
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--break-rate", type=float, default=0.0)
    parser.add_argument("--reasoning-tokens", type=int, default=0)
    parser.add_argument("--prefix-cache", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep-log", action="store_true")
    parser.add_argument("--lean", action="store_true")
    parser.add_argument("--otlp-traces-endpoint", default=None)
    parser.add_argument("--exit-with-parent", action="store_true", help="exit when standard input closes")
    args = parser.parse_args()
    if args.exit_with_parent:
        threading.Thread(target=_exit_at_end_of_input, daemon=True).start()
    options = SimOptions(
        model=args.model,
        api_key=os.environ.get(API_KEY_ENV),
        error_rate=args.error_rate,
        break_rate=args.break_rate,
        reasoning_tokens=args.reasoning_tokens,
        prefix_cache=args.prefix_cache,
        seed=args.seed,
        keep_log=args.keep_log,
        lean=args.lean,
        otlp_endpoint=args.otlp_traces_endpoint,
    )
    spec = SimSpec(args.profile, options, args.host, args.port)
    with contextlib.suppress(KeyboardInterrupt):
        run_loop(serve(spec, announce="port"))


def _exit_at_end_of_input() -> None:
    """The parent holds this process's standard input open: when it ends (the parent exited, even
    killed), so does the simulator."""
    sys.stdin.buffer.read()
    os._exit(0)


if __name__ == "__main__":
    main()
