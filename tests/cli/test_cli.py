"""The command line: one-line errors for bad input, scenario files, sweeps, Ctrl-C."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadgen.cli import main
from tests.conftest import SimFactory


@pytest.mark.parametrize(
    "args, message",
    [
        (["--concurrency", "abc"], "--concurrency: expected a number"),
        (["--concurrency", "1..64"], "'run' takes one level"),
        (["--concurrency", "4", "--rate", "2"], "exclusive"),
        (["--rate", "0"], "--rate: expected positive numbers"),
        (["--duration", "soon"], "--duration: expected a duration"),
        (["--slo", "ttft=fast"], "--slo: expected a duration"),
        (["--slo", "speed=5ms"], "unknown SLO metric"),
        (["--api", "grpc"], "--api: expected one of"),
        (["--endpoint", "localhost:8000"], "expected an http:// or https:// URL"),
        (["--prompts", "/nonexistent.jsonl"], "no such file"),
        (["--header", "no-colon"], "--header: expected a header"),
        (["--api-key-env", "LOADGEN_TEST_UNSET_VARIABLE"], "environment variable is not set"),
        (["--extra-body", "[1]"], "--extra-body: expected a JSON object"),
        (["--synthetic", "input=x"], "--synthetic"),
    ],
)
def test_bad_flags_give_one_line_and_exit_2(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "content, message",
    [
        ("concurrency: [1, 2]\nbogus: 1\n", "unknown key 'bogus'"),
        ("concurrency: lots\n", "key 'concurrency': expected a number"),
        ("- a\n- b\n", "expected a mapping"),
        ("a: [unclosed\n", "not valid YAML at line"),
        ("ignore-eos: maybe\n", "key 'ignore-eos': expected true or false"),
    ],
)
def test_bad_scenario_files(tmp_path: Path, content: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "bad.yaml"
    scenario.write_text(content)
    assert main(["sweep", str(scenario)]) == 2
    err = capsys.readouterr().err.strip()
    assert str(scenario) in err and message in err
    assert len(err.splitlines()) == 1


def test_scenario_sweep_with_flag_override(start_sim: SimFactory, tmp_path: Path) -> None:
    sim = start_sim("fixed:5,1")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("one\ntwo\nthree\n")
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        f"endpoint: {sim.url}\nconcurrency: 1,2\nrequests: 3\nmax-tokens: 4\n"
        "prompts: prompts.txt\nslo: ttft=1s,tpot=100ms\nquiet: true\n"
    )
    output = tmp_path / "out"
    assert main(["sweep", str(scenario), "--concurrency", "1,2,4", "--output", str(output)]) == 0
    sweep = json.loads((output / "sweep.json").read_text())
    assert [level["load"]["concurrency"] for level in sweep["levels"]] == [1, 2, 4]
    assert all(level["requests"]["completed"] == 3 for level in sweep["levels"])
    assert all(level["goodput"]["fraction"] == 1.0 for level in sweep["levels"])
    assert sorted(p.name for p in output.iterdir()) == [
        "config.json",
        "level-01-c1",
        "level-02-c2",
        "level-03-c4",
        "sweep.json",
    ]
    level = output / "level-03-c4"
    assert {"summary.json", "requests.jsonl", "ttft.hlog", "itl.hlog", "tpot.hlog", "e2e.hlog"} <= {
        p.name for p in level.iterdir()
    }
    assert len((level / "requests.jsonl").read_text().splitlines()) == 3 + 4  # measured + warm-up


def test_open_loop_rate_sweep(start_sim: SimFactory, tmp_path: Path) -> None:
    sim = start_sim("fixed:5,1")
    output = tmp_path / "out"
    code = main(
        [
            "sweep",
            "--quiet",
            "--endpoint",
            sim.url,
            "--rate",
            "20,40",
            "--requests",
            "20",
            "--arrival",
            "constant",
            "--max-tokens",
            "4",
            "--output",
            str(output),
        ]
    )
    assert code == 0
    levels = json.loads((output / "sweep.json").read_text())["levels"]
    assert [level["load"]["rate"] for level in levels] == [20.0, 40.0]
    for level in levels:
        assert level["throughput"]["requests_per_s"] == pytest.approx(level["load"]["rate"], rel=0.2)


def test_hlog_files_decode_to_the_summary_counts(start_sim: SimFactory, tmp_path: Path) -> None:
    from hdrh.histogram import HdrHistogram
    from hdrh.log import HistogramLogReader

    sim = start_sim("fixed:5,2")
    output = tmp_path / "out"
    assert (
        main(
            [
                "run",
                "--quiet",
                "--endpoint",
                sim.url,
                "--requests",
                "12",
                "--concurrency",
                "3",
                "--max-tokens",
                "30",
                "--hlog-interval",
                "100ms",
                "--output",
                str(output),
            ]
        )
        == 0
    )
    summary = json.loads((output / "summary.json").read_text())
    reader = HistogramLogReader(str(output / "itl.hlog"), HdrHistogram(1, 3_600_000_000, 3))
    total = 0
    intervals = 0
    while (histogram := reader.get_next_interval_histogram()) is not None:
        total += histogram.get_total_count()
        intervals += 1
    assert intervals >= 2
    assert total == summary["latency_ms"]["itl"]["count"]


def test_ctrl_c_writes_partial_results(start_sim: SimFactory, tmp_path: Path) -> None:
    sim = start_sim("fixed:5,20")
    output = tmp_path / "out"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "loadgen",
            "run",
            "--quiet",
            "--endpoint",
            sim.url,
            "--concurrency",
            "4",
            "--requests",
            "100000",
            "--max-tokens",
            "20",
            "--output",
            str(output),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 20
    records = output / "requests.jsonl"
    while time.monotonic() < deadline and (not records.exists() or len(records.read_text().splitlines()) < 10):
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    summary = json.loads((output / "summary.json").read_text())
    assert summary["partial"] is True
    lines = records.read_text().splitlines()
    assert len(lines) >= 10
    assert summary["requests"]["completed"] + summary["requests"]["warmup_excluded"] + summary["requests"][
        "cancelled_at_end"
    ] + summary["requests"]["failed"] == len(lines)
    assert "partial" in stdout


def test_trace_replay_and_stages_from_the_command_line(start_sim: SimFactory, tmp_path: Path) -> None:
    sim = start_sim("fixed:2,1")
    trace = tmp_path / "trace.jsonl"
    trace.write_text(
        "".join(f'{{"timestamp": {i * 0.05}, "input_tokens": 8, "output_tokens": 4}}\n' for i in range(10))
    )
    output = tmp_path / "trace-out"
    assert main(["run", "--quiet", "--endpoint", sim.url, "--trace", str(trace), "--trace-speed", "2",
                 "--output", str(output)]) == 0  # fmt: skip
    summary = json.loads((output / "summary.json").read_text())
    assert summary["load"]["trace_file"] == str(trace) and summary["requests"]["completed"] == 10
    records = [json.loads(line) for line in (output / "requests.jsonl").read_text().splitlines()]
    intended = sorted(r["intended_ns"] for r in records)
    assert [b - a for a, b in itertools.pairwise(intended)] == [25_000_000] * 9
    scenario = tmp_path / "stages.yaml"
    scenario.write_text(f"endpoint: {sim.url}\nmax-tokens: 4\nquiet: true\nstages:\n"
                        "  - {duration: 300ms, rate: 40}\n  - {duration: 300ms, rate: 0}\n")  # fmt: skip
    assert main(["run", str(scenario), "--output", str(tmp_path / "stages-out")]) == 0
    staged = json.loads((tmp_path / "stages-out" / "summary.json").read_text())
    assert staged["load"]["stages"] == [{"duration_s": 0.3, "target": 40.0}, {"duration_s": 0.3, "target": 0.0}]
    assert 2 <= staged["requests"]["completed"] <= 30  # integral of the rate: 6 + 6 = 12 expected


@pytest.mark.parametrize(
    "args, message",
    [
        (["--stages", "30s:x=4"], "--stages: expected stages like"),
        (["--stages", "30s:c=4", "--concurrency", "2"], "--stages sets the load"),
        (["--trace", "/nonexistent.jsonl"], "--trace /nonexistent.jsonl: no such file"),
    ],
)
def test_schedule_errors(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", *args]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("scenario", sorted((Path(__file__).resolve().parents[2] / "scenarios").glob("*.yaml")),
                         ids=lambda path: path.name)  # fmt: skip
def test_every_shipped_scenario_loads(scenario: Path) -> None:
    from loadgen.scenario.options import load_scenario

    assert load_scenario(str(scenario))
