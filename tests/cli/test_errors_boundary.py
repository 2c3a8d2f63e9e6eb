"""Anything unexpected ends as one line and a log file, exit code 70, never a bare traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import loadgen.cli.app as cli
from loadgen.run.outcome import ExitCode


def test_an_unexpected_exception_is_one_line_with_its_traceback_in_a_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*args: object, **kwargs: object) -> int:
        raise RuntimeError("something loadgen did not expect")

    monkeypatch.setattr(cli, "run", broken)
    code = cli.main(["run", "--requests", "1"])
    err = capsys.readouterr().err
    assert code == ExitCode.INTERNAL == 70
    assert "Traceback" not in err
    assert "internal error: RuntimeError: something loadgen did not expect" in err
    log = Path(re.search(r"traceback in (\S+)\)", err.replace("\n", "")).group(1))  # type: ignore[union-attr]
    assert "RuntimeError" in log.read_text() and "Traceback" in log.read_text()
    log.unlink()


@pytest.mark.parametrize("profile", ["nope", "fixed:a,b"])
def test_a_simulator_profile_typo_is_one_line_from_the_parent(profile: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--sim-profile", profile, "--requests", "1"]) == 2
    err = capsys.readouterr().err
    assert "--sim-profile" in err and "Traceback" not in err and 'File "' not in err
