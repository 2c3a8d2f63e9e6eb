from pathlib import Path

import pytest

from loadgen.errors import ConfigError
from loadgen.prompts.trace import load_trace

MS = 1_000_000


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_loadgen_jsonl_with_prompts_messages_and_token_counts(tmp_path: Path) -> None:
    trace = load_trace(write(tmp_path, "t.jsonl",
        '{"timestamp": 100.5, "prompt": "second", "output_tokens": 3}\n'
        '{"timestamp": 100.0, "input_tokens": 12, "output_tokens": 7}\n'
        '{"timestamp": 101.0, "messages": [{"role": "user", "content": "hi"}]}\n'))  # fmt: skip
    assert [entry.offset_ns for entry in trace] == [0, 500 * MS, 1000 * MS]  # sorted, from the first entry
    assert len(trace[0].prompt.as_text().split()) == 12 and trace[0].prompt.max_tokens == 7
    assert trace[1].prompt.text == "second" and trace[1].prompt.max_tokens == 3
    assert trace[2].prompt.as_messages() == [{"role": "user", "content": "hi"}]
    faster = load_trace(str(tmp_path / "t.jsonl"), speed=2.0)
    assert [entry.offset_ns for entry in faster] == [0, 250 * MS, 500 * MS]


def test_mooncake_jsonl_timestamps_in_milliseconds(tmp_path: Path) -> None:
    trace = load_trace(write(tmp_path, "m.jsonl",
        '{"timestamp": 0, "input_length": 6755, "output_length": 500, "hash_ids": [0, 1]}\n'
        '{"timestamp": 1500, "input_length": 30, "output_length": 12, "hash_ids": [2]}\n'))  # fmt: skip
    assert [entry.offset_ns for entry in trace] == [0, 1500 * MS]
    assert len(trace[0].prompt.as_text().split()) == 6755 and trace[0].prompt.max_tokens == 500


def test_azure_csv(tmp_path: Path) -> None:
    trace = load_trace(write(tmp_path, "a.csv",
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:50.9951690,396,109\n"))  # fmt: skip
    assert trace[1].offset_ns == pytest.approx(4.314579 * 1e9, abs=1_000)
    assert trace[1].prompt.max_tokens == 109 and len(trace[0].prompt.as_text().split()) == 374


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("t.jsonl", '{"prompt": "x"}\n', "field 'timestamp'"),
        ("t.jsonl", '{"timestamp": 1}\n', "expected 'prompt', 'messages' or 'input_tokens'"),
        ("t.jsonl", '{"timestamp": 1, "input_tokens": -4}\n', "field 'input_tokens' is -4"),
        ("t.jsonl", "not json\n", "not valid JSON"),
        ("t.jsonl", "\n", "no entries"),
        ("a.csv", "time,tokens\n1,2\n", "Azure trace columns"),
        ("a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,1,2\n", "a.csv:2"),
    ],
)
def test_bad_traces_are_one_line(tmp_path: Path, name: str, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_trace(write(tmp_path, name, text))
