"""A disk that fills up mid-run loses no figure: requests.jsonl stays valid JSON lines up to where
it stopped, the summary says what was lost, and when even the summary cannot be written the
console shows the figures and one line says why (exit code 74)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))
from loadgen.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_file_that_cannot_grow_keeps_whole_lines_and_the_summary_says_so(tmp_path: Path) -> None:
    output = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-c", LIMITED, "run", "--sim-profile", "fixed:1,0", "--concurrency", "8", "--requests", "400",
         "--max-tokens", "24", "--quiet", "--output", str(output)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "Traceback" not in result.stderr + result.stdout
    assert result.returncode == 74  # the figures are whole, the records are not
    summary = json.loads((output / "summary.json").read_text())
    assert summary["requests"]["completed"] == 400  # every figure, though not every record is on disk
    lost = summary["output_errors"]["requests.jsonl"]
    assert lost["lost_writes"] > 0 and lost["error"]
    lines = (output / "requests.jsonl").read_text().splitlines()
    assert 0 < len(lines) < 400 and all(json.loads(line)["index"] >= 0 for line in lines)
    assert "cannot write requests.jsonl" in result.stdout.replace("\n", " ")


def test_when_even_the_summary_cannot_be_written_the_reason_is_one_line(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("needs a small tmpfs (mount, as root)")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "loadgen", "run", "--sim-profile", "fixed:1,0", "--concurrency", "8",
             "--requests", "400", "--max-tokens", "256", "--quiet", "--output", str(small / "out")],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        subprocess.run(["umount", str(small)], capture_output=True)
    text = result.stdout + result.stderr
    assert result.returncode == 74 and "Traceback" not in text
    assert "cannot write" in text and "No space left on device" in text
    assert "requests: 400 completed" in text.replace("\n", " ")


def test_a_failing_listener_is_said_in_the_console_and_the_summary(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from loadgen.cli import main
    from loadgen.report.files import RecordWriter

    def broken(self: RecordWriter, record: object) -> None:
        raise RuntimeError("records cannot be serialised")

    monkeypatch.setattr(RecordWriter, "on_record", broken)
    output = tmp_path / "out"
    assert main(["run", "--sim-profile", "fixed:1,0", "--requests", "3", "--max-tokens", "4", "--quiet",
                 "--output", str(output)]) == 74  # fmt: skip
    out = " ".join(capsys.readouterr().out.split())
    assert "results incomplete at c=1: records were lost" in out
    assert "records failed in RecordWriter: RuntimeError: records cannot be serialised" in out
    assert json.loads((output / "summary.json").read_text())["listener_failures"]["RecordWriter"] >= 3


def test_an_output_directory_holds_one_command_at_a_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from loadgen.cli import main
    from loadgen.report.files import prepare_output_dir

    output = tmp_path / "out"
    with prepare_output_dir(output):  # another command is writing there
        code = main(["run", "--sim-profile", "fixed:1,0", "--requests", "2", "--max-tokens", "2", "--quiet",
                     "--output", str(output)])  # fmt: skip
    error = capsys.readouterr().err
    assert code == 2 and "another loadgen command is writing its results there" in error
    assert not (output / "summary.json").exists()
    assert main(["run", "--sim-profile", "fixed:1,0", "--requests", "2", "--max-tokens", "2", "--quiet",
                 "--output", str(output)]) == 0  # fmt: skip  # released: the next one may


def test_a_symbolic_link_in_the_output_is_never_written_through(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from loadgen.cli import main

    output, precious = tmp_path / "out", tmp_path / "precious.txt"
    output.mkdir()
    precious.write_text("keep me")
    (output / "requests.jsonl").symlink_to(precious)
    code = main(["run", "--sim-profile", "fixed:1,0", "--requests", "2", "--max-tokens", "2", "--quiet",
                 "--output", str(output)])  # fmt: skip
    error = capsys.readouterr().err
    assert precious.read_text() == "keep me"
    assert code == 74 and "is a symbolic link" in error and "Traceback" not in error
