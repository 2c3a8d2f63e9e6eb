"""Result files that a crash or a full disk cut off, and an --output that cannot take results:
one line naming the file, never a traceback."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from loadgen.cli import main
from tests.conftest import SimFactory


@pytest.fixture
def finished_run(start_sim: SimFactory, tmp_path: Path) -> Path:
    sim = start_sim("fixed:1,1")
    output = tmp_path / "run"
    assert main(["run", "--endpoint", sim.url, "--requests", "4", "--warmup", "0", "--max-tokens", "4", "--quiet",
                 "--output", str(output)]) == 0  # fmt: skip
    return output


def test_an_output_that_is_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "taken"
    target.write_text("")
    assert main(["run", "--requests", "1", "--output", str(target)]) == 2
    assert "a file is there; give a directory" in capsys.readouterr().err


def test_a_cut_off_summary_is_one_line(finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    summary = finished_run / "summary.json"
    summary.write_text(summary.read_text()[:150])
    assert main(["report", str(finished_run), "--output", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert "summary.json: not valid JSON" in err and "Traceback" not in err


def test_a_cut_off_last_record_is_skipped_and_a_bad_middle_one_named(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = finished_run / "requests.jsonl"
    lines = records.read_text().splitlines(keepends=True)
    records.write_text("".join(lines[:-1]) + lines[-1][:30])
    assert main(["report", str(finished_run), "--output", str(tmp_path / "r.html"), "--export", "csv"]) == 0
    with (tmp_path / "requests.csv").open() as rows:
        assert len(list(csv.DictReader(rows))) == len(lines) - 1
    records.write_text(lines[0][:30] + "\n" + "".join(lines[1:]))
    assert main(["report", str(finished_run), "--output", str(tmp_path / "r.html"), "--export", "csv"]) == 2
    assert "requests.jsonl:1: not a JSON record" in capsys.readouterr().err
    assert json.loads(lines[1])  # the rest of the file was fine
