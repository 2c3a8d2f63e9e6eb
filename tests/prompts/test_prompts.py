import json
from pathlib import Path

import pytest

from loadgen.errors import ConfigError
from loadgen.prompts import Prompt, PromptPicker
from loadgen.prompts.loaders import load_prompts
from loadgen.prompts.synthetic import parse_synthetic, synthesize


def test_builtin_default_set_has_varied_prompts() -> None:
    prompts = load_prompts("builtin:default")
    assert len(prompts) >= 30
    assert len({p.id for p in prompts}) == len(prompts)
    lengths = [len(p.as_text().split()) for p in prompts]
    assert min(lengths) < 10 and max(lengths) > 100
    assert any(p.messages for p in prompts)


def test_jsonl_prompt_and_messages(tmp_path: Path) -> None:
    file = tmp_path / "p.jsonl"
    file.write_text(
        '{"id": "a", "prompt": "hi", "max_tokens": 5}\n\n{"messages": [{"role": "user", "content": "yo"}]}\n'
    )
    prompts = load_prompts(str(file))
    assert prompts[0] == Prompt("a", text="hi", max_tokens=5)
    assert prompts[1].as_messages() == [{"role": "user", "content": "yo"}]
    assert prompts[1].id == "line-3"


@pytest.mark.parametrize(
    "line, message",
    [
        ("{bad", "p.jsonl:1: not valid JSON"),
        ('"just a string"', "p.jsonl:1: expected a JSON object"),
        ('{"prompt": ""}', "p.jsonl:1: expected a non-empty string field 'prompt'"),
        ('{"prompt": "x", "max_tokens": -1}', "p.jsonl:1: field 'max_tokens' is -1"),
        ('{"messages": [{"content": "x"}]}', "p.jsonl:1: field 'messages' must be"),
    ],
)
def test_jsonl_errors_name_file_line_and_field(tmp_path: Path, line: str, message: str) -> None:
    file = tmp_path / "p.jsonl"
    file.write_text(line + "\n")
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_prompts(str(file))


def test_sharegpt(tmp_path: Path) -> None:
    file = tmp_path / "share.json"
    file.write_text(
        json.dumps(
            [
                {"id": "x", "conversations": [{"from": "human", "value": "Q1"}, {"from": "gpt", "value": "A1"}]},
                {"id": "y", "conversations": [{"from": "gpt", "value": "only an answer"}]},
            ]
        )
    )
    assert load_prompts(str(file)) == [Prompt("x", text="Q1")]
    file.write_text('{"not": "a list"}')
    with pytest.raises(ConfigError, match="ShareGPT"):
        load_prompts(str(file))


def test_text_file_one_prompt_per_line(tmp_path: Path) -> None:
    file = tmp_path / "p.txt"
    file.write_text("first\n\n second \n")
    assert [p.text for p in load_prompts(str(file))] == ["first", "second"]


def test_missing_empty_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_prompts(str(tmp_path / "nope.jsonl"))
    empty = tmp_path / "e.txt"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="contains no prompts"):
        load_prompts(str(empty))
    binary = tmp_path / "b.txt"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_prompts(str(binary))


def test_synthetic_lengths_and_seeding() -> None:
    spec = parse_synthetic("input=100,output=20,dist=normal,spread=0.1,count=50")
    prompts = synthesize(spec, seed=1)
    assert len(prompts) == 50
    lengths = [len(p.as_text().split()) for p in prompts]
    assert 85 <= sum(lengths) / len(lengths) <= 115
    assert len(set(lengths)) > 5
    assert synthesize(spec, seed=1) == prompts
    assert synthesize(spec, seed=2) != prompts
    fixed = synthesize(parse_synthetic("input=30,output=7"), seed=0)
    assert {len(p.as_text().split()) for p in fixed} == {30}
    assert {p.max_tokens for p in fixed} == {7}


@pytest.mark.parametrize("text", ["input=abc", "dist=zipf", "spread=2", "size=3", "input=0"])
def test_synthetic_errors(text: str) -> None:
    with pytest.raises(ConfigError, match="--synthetic"):
        parse_synthetic(text)


def test_picker_is_a_seeded_shuffle_per_pass() -> None:
    prompts = [Prompt(str(i), text=str(i)) for i in range(10)]
    picker = PromptPicker(prompts, seed=3)
    first_pass = [picker.pick(i).id for i in range(10)]
    assert sorted(first_pass) == [str(i) for i in range(10)]
    assert first_pass != [str(i) for i in range(10)]
    assert [PromptPicker(prompts, seed=3).pick(i).id for i in range(10)] == first_pass
    second_pass = [picker.pick(i).id for i in range(10, 20)]
    assert sorted(second_pass) == sorted(first_pass)


def test_synthetic_input_lengths_are_exact_tokens_with_a_tokenizer(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from loadgen.prompts.synthetic import WORDS, SyntheticSpec, achieved_lengths, synthesize
    from loadgen.tokenizer import load_token_counter

    # a small BPE whose vocabulary splits most words into several tokens, as real tokenizers do
    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.train_from_iterator([" ".join(WORDS)] * 4, trainers.BpeTrainer(vocab_size=300, special_tokens=["[UNK]"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))  # fmt: skip
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    counter = load_token_counter(str(tmp_path / "tokenizer.json"))
    assert counter.count(" ".join(WORDS)) > len(WORDS)  # words really are several tokens here
    prompts = synthesize(SyntheticSpec(input_tokens=512, output_tokens=16, count=20), seed=3, counter=counter)
    counts = [counter.count(p.as_text()) for p in prompts]
    assert all(511 <= count <= 513 for count in counts), counts
    lengths = achieved_lengths(prompts, counter)
    assert lengths["min"] >= 511 and lengths["max"] <= 513  # type: ignore[operator]
    words = synthesize(SyntheticSpec(input_tokens=512, output_tokens=16, count=3), seed=3)
    assert achieved_lengths(words, None)["min"] == 512  # without a tokenizer: one word per token


def test_synthetic_shared_prefixes() -> None:
    """prefixes=K,prefix_len=P: prompt n starts with prefix n mod K, then its own tokens."""
    from loadgen.prompts.synthetic import parse_synthetic, synthesize

    prompts = synthesize(parse_synthetic("input=100,output=8,prefixes=3,prefix_len=60,count=9"), seed=1)
    words = [p.as_text().split() for p in prompts]
    assert all(len(w) == 100 for w in words)  # one word a token: exact
    assert words[0][:60] == words[3][:60] == words[6][:60] and words[0][:60] != words[1][:60]
    assert words[0][60:] != words[3][60:]  # the rest is each prompt's own
    plain = [p.as_text().split()[:16] for p in synthesize(parse_synthetic("input=100,output=8,count=9"), seed=1)]
    assert len({" ".join(w) for w in plain}) == 9  # without prefixes no two share their first block


@pytest.mark.parametrize(
    "spec, message",
    [("input=100,prefixes=2", "go together"), ("input=100,prefixes=2,prefix_len=100", "must be shorter than input"),
     ("input=100,prefixes=x,prefix_len=5", "whole numbers")],
)  # fmt: skip
def test_bad_shared_prefixes_are_one_line(spec: str, message: str) -> None:
    from loadgen.prompts.synthetic import parse_synthetic

    with pytest.raises(ConfigError, match=message):
        parse_synthetic(spec)
