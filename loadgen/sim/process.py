"""Simulator: run the server in its own process, so it never shares an event loop or a GIL
with the client whose measurements it is there to check."""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from aiohttp import web

from loadgen.errors import ConfigError, LoadgenError
from loadgen.lifetime import ends_with_this_process
from loadgen.sim.lean import LeanServer
from loadgen.sim.profiles import FixedProfile, get_profile
from loadgen.sim.server import SimOptions, SimServer

READY_TIMEOUT_S = 30.0
API_KEY_ENV = "LOADGEN_SIM_API_KEY"


@dataclass(frozen=True, slots=True)
class SimSpec:
    profile: str
    options: SimOptions
    host: str = "127.0.0.1"
    port: int = 0


async def serve(spec: SimSpec, announce: str = "human") -> None:
    """Serve until cancelled. ``announce="port"`` prints ``PORT n`` for a parent process."""
    profile = get_profile(spec.profile)
    sock = socket.socket(socket.AF_INET6 if ":" in spec.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((spec.host, spec.port))
    if spec.options.lean:
        if spec.options.otlp_endpoint:
            raise ConfigError("the lean simulator exports no spans: leave out --lean for --otlp-traces-endpoint")
        if not isinstance(profile, FixedProfile):
            raise ConfigError(f"the lean simulator serves fixed profiles only, not {spec.profile!r}")
        sock.listen(4096)
        _announce(spec, sock, announce)
        await LeanServer(profile, spec.options).serve(sock)
        return
    server = SimServer(profile, spec.options)
    runner = web.AppRunner(server.app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.SockSite(runner, sock, backlog=4096)
    await site.start()
    _announce(spec, sock, announce)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def _announce(spec: SimSpec, sock: socket.socket, announce: str) -> None:
    port = sock.getsockname()[1]
    if announce == "port":
        print(f"PORT {port}", flush=True)
    else:
        print(
            f"loadgen simulator ({spec.profile}, model {spec.options.model!r}) on http://{spec.host}:{port}", flush=True
        )


def spec_to_args(spec: SimSpec) -> list[str]:
    options = spec.options
    args = [
        "--profile",
        spec.profile,
        "--host",
        spec.host,
        "--port",
        str(spec.port),
        "--model",
        options.model,
        "--error-rate",
        str(options.error_rate),
        "--break-rate",
        str(options.break_rate),
        "--reasoning-tokens",
        str(options.reasoning_tokens),
        "--seed",
        str(options.seed),
    ]
    if options.keep_log:
        args.append("--keep-log")
    if options.prefix_cache:
        args.append("--prefix-cache")
    if options.lean:
        args.append("--lean")
    if options.otlp_endpoint:
        args += ["--otlp-traces-endpoint", options.otlp_endpoint]
    return args


class SimProcess:
    """``with SimProcess(spec) as sim: sim.url`` — a child process on a free port, always stopped.

    The API key, if any, is passed through the environment, never on the command line.
    """

    def __init__(self, spec: SimSpec) -> None:
        self.spec = spec
        self._process: subprocess.Popen[str] | None = None
        self.port: int | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def url(self) -> str:
        return f"http://{self.spec.host}:{self.port}"

    def start(self) -> SimProcess:
        profile = get_profile(self.spec.profile)  # a bad profile is one line here, not a child's traceback
        if self.spec.options.lean and not isinstance(profile, FixedProfile):
            raise ConfigError(f"the lean simulator serves fixed profiles only, not {self.spec.profile!r}")
        env = dict(os.environ)
        if self.spec.options.api_key is not None:
            env[API_KEY_ENV] = self.spec.options.api_key
        # stderr goes to a file, never an unread pipe: a full pipe would block the server's loop
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in stop()
        # a session of its own: Ctrl-C in a terminal (SIGINT to the whole process group) must not
        # take the server away under the requests the client is still finishing; it is stopped
        # here, or ends with its standard input when this process ends
        self._process = subprocess.Popen(
            [sys.executable, "-m", "loadgen.sim", *spec_to_args(self.spec), "--exit-with-parent"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
            start_new_session=True,
            preexec_fn=ends_with_this_process(),
        )
        assert self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], READY_TIMEOUT_S)
        line = self._process.stdout.readline() if ready else ""
        if not line.startswith("PORT "):
            self._stderr.seek(0)
            detail = line.strip() or self._stderr.read().strip()[-300:] or "no answer"
            self.stop()
            raise LoadgenError(f"the simulator did not start: {detail}")
        self.port = int(line.split()[1])
        return self

    def stop(self) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._stderr.close()
        self._process = None

    def __enter__(self) -> SimProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
