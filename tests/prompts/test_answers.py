import json
from pathlib import Path

import pytest

from loadgen.cli import main
from loadgen.errors import ConfigError
from loadgen.prompts.answers import answer_is_correct
from loadgen.prompts.loaders import load_prompts
from tests.conftest import SimFactory


@pytest.mark.parametrize(
    "answer, expected, match, correct",
    [
        (" True. ", "true", "exact", True),
        ("It is true.", "true", "exact", False),
        ("The capital is Canberra.", "Canberra", "contains", True),
        ("The answer is 391", r"\b391\b", "regex", True),
        ("No, I think yes is wrong", ["no", "yes"], "choice", True),
        ("Yes, definitely not no", ["no", "yes"], "choice", False),
        ("maybe", ["no", "yes"], "choice", False),
    ],
)
def test_matching(answer: str, expected: object, match: str, correct: bool) -> None:
    assert answer_is_correct(answer, expected, match) is correct  # type: ignore[arg-type]


def test_prompt_files_carry_expectations(tmp_path: Path) -> None:
    file = tmp_path / "p.jsonl"
    file.write_text('{"prompt": "RTE: ... true or false?", "expected": ["true", "false"]}\n'
                    '{"prompt": "Capital of Australia?", "expected": "canberra"}\n')  # fmt: skip
    rte, capital = load_prompts(str(file))
    assert rte.expected == ("true", "false") and rte.match == "choice"
    assert capital.expected == "canberra" and capital.match == "contains"
    file.write_text('{"prompt": "x", "expected": "(", "match": "regex"}\n')
    with pytest.raises(ConfigError, match="not a valid regex"):
        load_prompts(str(file))
    file.write_text('{"prompt": "x", "expected": "y", "match": "fuzzy"}\n')
    with pytest.raises(ConfigError, match="field 'match' is 'fuzzy'"):
        load_prompts(str(file))


def test_accuracy_per_level_against_the_simulator(start_sim: SimFactory, tmp_path: Path) -> None:
    # the simulator answers " the of and to in …": "the" is right, "model" is not
    file = tmp_path / "p.jsonl"
    file.write_text(
        '{"id": "good", "prompt": "a", "expected": "the"}\n{"id": "bad", "prompt": "b", "expected": "model"}\n'
    )
    sim = start_sim("fixed:1,1")
    output = tmp_path / "out"
    assert main(["run", "--quiet", "--endpoint", sim.url, "--prompts", str(file), "--requests", "10",
                 "--warmup", "0", "--max-tokens", "5", "--output", str(output)]) == 0  # fmt: skip
    answers = json.loads((output / "summary.json").read_text())["answers"]
    assert answers == {"checked": 10, "correct": 5, "accuracy": 0.5}
    records = [json.loads(line) for line in (output / "requests.jsonl").read_text().splitlines()]
    assert {r["prompt_id"]: r["correct"] for r in records} == {"good": True, "bad": False}
    assert all(r["output_text"] == " the of and to in" for r in records)
