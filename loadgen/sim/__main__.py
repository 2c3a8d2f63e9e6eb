"""``python -m loadgen.sim``: the simulator as a child process (used by ``SimProcess``)."""

from __future__ import annotations

import argparse
import contextlib
import os

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
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep-log", action="store_true")
    parser.add_argument("--lean", action="store_true")
    args = parser.parse_args()
    options = SimOptions(
        model=args.model,
        api_key=os.environ.get(API_KEY_ENV),
        error_rate=args.error_rate,
        break_rate=args.break_rate,
        seed=args.seed,
        keep_log=args.keep_log,
        lean=args.lean,
    )
    spec = SimSpec(args.profile, options, args.host, args.port)
    with contextlib.suppress(KeyboardInterrupt):
        run_loop(serve(spec, announce="port"))


if __name__ == "__main__":
    main()
