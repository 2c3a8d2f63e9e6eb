from pathlib import Path

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from loadgen.errors import ConfigError
from loadgen.tokenizer import load_token_counter


def write_word_tokenizer(path: Path) -> Path:
    vocabulary = {"[UNK]": 0, "hello": 1, "world": 2}
    tokenizer = Tokenizer(models.WordLevel(vocabulary, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    file = path / "tokenizer.json"
    tokenizer.save(str(file))
    return file


def test_hugging_face_tokenizer_json(tmp_path: Path) -> None:
    counter = load_token_counter(str(write_word_tokenizer(tmp_path)))
    assert counter.count("hello world, hello!") == 5  # hello world , hello !
    assert counter.count("") == 0
    assert load_token_counter(str(tmp_path)).count("hello") == 1  # a directory holding tokenizer.json


def test_bad_tokenizer_specs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no such tokenizer\.json"):
        load_token_counter(str(tmp_path / "missing.json"))
    broken = tmp_path / "broken.json"
    broken.write_text("{}")
    with pytest.raises(ConfigError, match=r"not a valid tokenizer\.json"):
        load_token_counter(str(broken))


def test_tokenizer_counts_beside_server_usage(tmp_path: Path, start_sim) -> None:  # type: ignore[no-untyped-def]
    import json

    from loadgen.cli import main

    tokenizer = write_word_tokenizer(tmp_path)
    sim = start_sim("fixed:1,1")
    output = tmp_path / "out"
    code = main(
        [
            "run",
            "--quiet",
            "--endpoint",
            sim.url,
            "--requests",
            "3",
            "--max-tokens",
            "5",
            "--tokenizer",
            str(tokenizer),
            "--output",
            str(output),
        ]
    )
    assert code == 0
    summary = json.loads((output / "summary.json").read_text())
    counting = summary["token_counting"]
    assert counting["output_method"] == "server_usage"
    assert counting["tokenizer"] == str(tokenizer)
    comparison = counting["comparisons"]["tokenizer_vs_server_usage"]
    assert comparison["requests"] == 3
    assert comparison["server_usage_tokens"] == 15
    # the simulator's words are unknown to this tiny vocabulary: each word is one [UNK] token
    assert comparison["tokenizer_tokens"] == 15
