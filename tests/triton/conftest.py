"""A real Triton Inference Server (PyPI's nvidia-pytriton) with loadgen's test models.

pytriton needs numpy<2, so it lives in its own virtual environment, created here on first use and
kept under ``.cache/`` (or ``$LOADGEN_PYTRITON_VENV``). The server binds HTTP, gRPC and metrics to
127.0.0.1 on free ports and is stopped after the session. On CI a failure to set it up fails the
tests; elsewhere (no network, an unsupported platform) they are skipped with the reason.
"""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.real_servers import cached_venv, unavailable

ROOT = Path(__file__).resolve().parents[2]
PYTRITON = ("nvidia-pytriton==0.7.0", "numpy<2")
TTFT_MS = 100.0
ITL_MS = 20.0
READY_TIMEOUT_S = 240.0
MODELS = ("stream", "text", "batched", "ft")


@dataclass(frozen=True)
class TritonServer:
    http_url: str
    grpc_url: str
    metrics_url: str
    ttft_ms: float
    itl_ms: float


def _unavailable(reason: str) -> None:
    unavailable("Triton server", reason)


def _venv() -> Path:
    venv = Path(os.environ.get("LOADGEN_PYTRITON_VENV", ROOT / ".cache" / "pytriton-venv"))
    return cached_venv(venv, PYTRITON, "Triton server", install_timeout_s=900)


def _models_ready(http_port: int) -> bool:
    """Every test model answers ready (Triton's readiness API, as a deployment's probe would ask)."""
    for model in MODELS:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v2/models/{model}/ready", timeout=2) as reply:
                if reply.status != 200:
                    return False
        except OSError:
            return False
    return True


@pytest.fixture(scope="session")
def triton_server() -> Iterator[TritonServer]:
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "aarch64"):
        _unavailable(f"nvidia-pytriton has no wheel for {sys.platform}/{platform.machine()}")
    python = _venv()
    ports = [free_port() for _ in range(3)]
    env = dict(os.environ)
    # The Python backend stub links libpython; the running interpreter's must come first.
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [sysconfig.get_config_var("LIBDIR"),
                                                           env.get("LD_LIBRARY_PATH")]))  # fmt: skip
    workdir = tempfile.mkdtemp(prefix="loadgen-triton-")
    log = open(Path(workdir) / "server.log", "wb")  # noqa: SIM115 - closed after the server stops
    process = subprocess.Popen(
        [str(python), str(Path(__file__).with_name("model_server.py")), "--workdir", str(Path(workdir) / "ws"),
         "--http-port", str(ports[0]), "--grpc-port", str(ports[1]), "--metrics-port", str(ports[2]),
         "--ttft-ms", str(TTFT_MS), "--itl-ms", str(ITL_MS)],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not _models_ready(ports[0]):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = (Path(workdir) / "server.log").read_bytes()[-1500:].decode("utf-8", "replace")
                _unavailable(f"server did not become ready (exit code {process.poll()}): {tail}")
            time.sleep(0.5)
        yield TritonServer(f"http://127.0.0.1:{ports[0]}", f"grpc://127.0.0.1:{ports[1]}",
                           f"http://127.0.0.1:{ports[2]}/metrics", TTFT_MS, ITL_MS)  # fmt: skip
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()
