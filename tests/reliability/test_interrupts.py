"""Ctrl-C is honoured at once, also while the preflight waits on a server that never answers."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path


def test_ctrl_c_during_the_preflight_ends_the_run_at_once(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True).start()  # accepts, never answers
    port = listener.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "loadgen", "run", "--endpoint", f"http://127.0.0.1:{port}", "--model", "m",
         "--requests", "1", "--output", str(tmp_path / "out")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not held and time.monotonic() < deadline:  # the preflight has connected and now waits
            time.sleep(0.05)
        assert held, "the preflight never connected"
        time.sleep(0.3)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=10)
    finally:
        process.kill()
        listener.close()
        for conn in held:
            conn.close()
    assert process.returncode == 130
    assert "interrupted during the preflight" in output and "Traceback" not in output
