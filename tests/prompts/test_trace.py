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
        '{"timestamp": 100.0, "input_tokens": 12, "output_tokens": 7}\n'
        '{"timestamp": 100.5, "prompt": "second", "output_tokens": 3}\n'
        '{"timestamp": 101.0, "messages": [{"role": "user", "content": "hi"}]}\n'))  # fmt: skip
    assert [entry.offset_ns for entry in trace] == [0, 500 * MS, 1000 * MS]  # from the first entry
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
        ("a.csv", "time,tokens\n1,2\n", "columns time, tokens are neither the Azure trace's"),
        (
            "t.jsonl",
            '{"timestamp": 2, "prompt": "a"}\n{"timestamp": 1, "prompt": "b"}\n',
            "t.jsonl:2: timestamp 1 s is before the entry above it",
        ),
        (
            "b.csv",
            "Timestamp,Model,Request tokens,Response tokens\n5,ChatGPT,many,18\n",
            "b.csv:2: column 'Request tokens' is 'many'",
        ),
        ("m.jsonl", '{"timestamp": 0, "input_length": 4, "hash_ids": ["a"]}\n', "field 'hash_ids'"),
        ("a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,1,2\n", "a.csv:2"),
    ],
)
def test_bad_traces_are_one_line(tmp_path: Path, name: str, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_trace(write(tmp_path, name, text))


def test_mooncake_blocks_with_the_same_hash_id_have_the_same_content(tmp_path: Path) -> None:
    """Mooncake's hash ids name 512-token blocks: a prefix the trace shared is shared in the replay,
    so a server's prefix cache hits where it hit."""
    trace = load_trace(write(tmp_path, "m.jsonl",
        '{"timestamp": 0, "input_length": 1000, "output_length": 5, "hash_ids": [7, 8]}\n'
        '{"timestamp": 10, "input_length": 700, "output_length": 5, "hash_ids": [7, 9]}\n'
        '{"timestamp": 20, "input_length": 600, "output_length": 5, "hash_ids": [3]}\n'))  # fmt: skip
    first, second, third = (entry.prompt.as_text().split() for entry in trace)
    assert (len(first), len(second), len(third)) == (1000, 700, 600)  # exact lengths, one word a token
    assert first[:512] == second[:512] and first[512:700] != second[512:700]
    assert third[:512] != first[:512]


def test_burstgpt_csv_in_seconds_without_the_failed_requests(tmp_path: Path) -> None:
    trace = load_trace(write(tmp_path, "b.csv",
        "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
        "5,ChatGPT,472,18,490,Conversation log\n"
        "45,ChatGPT,1087,0,1087,Conversation log\n"
        "118,GPT-4,417,276,693,Conversation log\n"))  # fmt: skip
    assert [entry.offset_ns for entry in trace] == [0, 113_000 * MS]
    assert [entry.prompt.max_tokens for entry in trace] == [18, 276]
    assert len(trace[0].prompt.as_text().split()) == 472


def test_the_format_can_be_named(tmp_path: Path) -> None:
    path = write(tmp_path, "trace.txt", '{"timestamp": 0, "input_length": 3, "output_length": 2}\n')
    assert load_trace(path, trace_format="mooncake")[0].prompt.max_tokens == 2
    with pytest.raises(ConfigError, match="expected 'prompt', 'messages' or 'input_tokens'"):
        load_trace(path, trace_format="loadgen")


@pytest.mark.parametrize("example", sorted((Path(__file__).parents[2] / "scenarios" / "traces").glob("*-sample.*")))
def test_the_shipped_example_traces_load(example: Path) -> None:
    trace = load_trace(str(example))
    assert len(trace) >= 200 and trace[-1].offset_ns > 0
