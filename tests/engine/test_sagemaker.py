"""SageMaker over real sockets: SigV4 checked by the emulator, event-stream frames, LMI lines."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from loadgen.cli import main
from tests.sagemaker_emulator import EmulatorOptions, running_emulator


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "emulator-secret-key")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))


def sagemaker_run(url: str, output: Path, *args: str) -> int:
    return main(["run", "--quiet", "--api", "sagemaker", "--endpoint-name", "my-endpoint", "--region", "us-east-1",
                 "--endpoint-url", url, "--max-tokens", "12", "--output", str(output), *args])  # fmt: skip


@pytest.mark.usefixtures("aws_env")
def test_streaming_and_whole_responses(tmp_path: Path) -> None:
    with running_emulator(EmulatorOptions(token_delay_s=0.003)) as url:
        assert sagemaker_run(url, tmp_path / "s", "--requests", "6", "--concurrency", "2") == 0
        assert sagemaker_run(url, tmp_path / "w", "--requests", "3", "--no-stream") == 0
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["requests"]["completed"] == 6
    assert summary["requests"]["finish_reasons"] == {"length": 6}
    assert summary["token_counting"]["output_method"] == "server_usage"
    assert summary["latency_ms"]["itl"]["count"] == 6 * 11
    assert summary["latency_ms"]["itl"]["p50"] >= 2.9  # never faster than the emulator, which waits 3 ms a token
    assert summary["endpoint"] == url
    # the emulator's log-probs: −0.1·(i+1) for tokens 0…10 and −0.05 for the last: mean −0.554
    records = [json.loads(line) for line in (tmp_path / "s" / "requests.jsonl").read_text().splitlines()]
    measured = [r for r in records if not r["warmup"]]
    assert measured[0]["mean_logprob"] == pytest.approx((-0.1 * sum(range(1, 12)) - 0.05) / 12)
    assert summary["confidence"]["p50"] == pytest.approx(math.exp((-0.1 * 66 - 0.05) / 12), abs=0.002)
    whole = json.loads((tmp_path / "w" / "summary.json").read_text())
    assert whole["requests"]["completed"] == 3


@pytest.mark.usefixtures("aws_env")
def test_bad_credentials_unknown_endpoint_and_stream_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with running_emulator(EmulatorOptions()) as url:
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "a-wrong-secret-key")
        assert sagemaker_run(url, tmp_path / "a", "--requests", "1") == 1
        err = capsys.readouterr().err
        assert "refused the credentials" in err and "signature we calculated" in err
        assert "a-wrong-secret-key" not in err
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "emulator-secret-key")
        code = main(["run", "--quiet", "--api", "sagemaker", "--endpoint-name", "nope", "--region", "us-east-1",
                     "--endpoint-url", url, "--requests", "1", "--output", str(tmp_path / "b")])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 1 and "Endpoint nope not found" in err and "None" not in err
    with running_emulator(EmulatorOptions(fail_after=5)) as url:
        # the 2-token preflight passes; mid-stream errors are then counted, the run goes on, and
        # with no request completed it exits 3
        assert sagemaker_run(url, tmp_path / "c", "--requests", "3") == 3
    summary = json.loads((tmp_path / "c" / "summary.json").read_text())
    assert summary["requests"]["errors_by_kind"] == {"server_error": 3}
    assert summary["requests"]["first_error_by_kind"]["server_error"] == "ModelStreamError: CUDA out of memory"


@pytest.mark.usefixtures("aws_env")
def test_credentials_never_reach_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with running_emulator(EmulatorOptions()) as url:
        assert sagemaker_run(url, tmp_path / "s", "--requests", "2") == 0
    written = "".join(path.read_text() for path in (tmp_path / "s").rglob("*") if path.is_file())
    shown = capsys.readouterr()
    for secret in ("emulator-secret-key", "AKIDEXAMPLE", "Signature="):
        assert secret not in written and secret not in shown.out + shown.err


def test_local_lmi_container(tmp_path: Path) -> None:
    with running_emulator(EmulatorOptions()) as url:
        code = main(["run", "--quiet", "--api", "lmi-local", "--endpoint", url, "--requests", "4", "--max-tokens", "8",
                     "--output", str(tmp_path / "l")])  # fmt: skip
    assert code == 0
    summary = json.loads((tmp_path / "l" / "summary.json").read_text())
    assert summary["requests"]["completed"] == 4 and summary["latency_ms"]["itl"]["count"] == 4 * 7


def test_sagemaker_needs_an_endpoint_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--api", "sagemaker", "--region", "us-east-1"]) == 2
    assert "--endpoint-name" in capsys.readouterr().err


@pytest.mark.usefixtures("aws_env")
@pytest.mark.parametrize("schema, extra", [("openai-chat", []), ("tgi", ["--custom-attributes", "format=tgi"])])
def test_openai_and_tgi_schemas_over_sagemaker(tmp_path: Path, schema: str, extra: list[str]) -> None:
    with running_emulator(EmulatorOptions()) as url:
        assert sagemaker_run(url, tmp_path / schema, "--schema", schema, "--requests", "3", *extra) == 0
    summary = json.loads((tmp_path / schema / "summary.json").read_text())
    assert summary["requests"]["completed"] == 3
    assert summary["requests"]["finish_reasons"] == {"length": 3}
    assert summary["latency_ms"]["itl"]["count"] == 3 * 11
