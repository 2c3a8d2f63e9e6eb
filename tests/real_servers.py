"""Shared by the fixtures that run real servers (pytriton, vLLM): each lives in a virtual
environment of its own, made on first use and kept for the next run, and on CI a server that
cannot be set up fails the tests instead of skipping them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest


def unavailable(server: str, reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"real {server} unavailable on CI: {reason}")
    pytest.skip(f"real {server} unavailable: {reason}")


def cached_venv(venv: Path, packages: tuple[str, ...], server: str, install_timeout_s: float,
                after_install: Callable[[Path], None] | None = None) -> Path:  # fmt: skip
    """The venv's Python, with ``packages`` installed (and ``after_install`` run on it) once; the
    marker file records what was installed, so a change of packages rebuilds it."""
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    if marker.is_file() and marker.read_text() == " ".join(packages) and python.exists():
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], capture_output=True, text=True,
                             timeout=install_timeout_s)  # fmt: skip
    if install.returncode != 0:
        unavailable(server, f"pip install {' '.join(packages)} failed: {install.stderr.strip()[-300:]}")
    if after_install is not None:
        after_install(python)
    marker.write_text(" ".join(packages))
    return python
