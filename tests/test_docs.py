"""The documentation: the MkDocs site builds (strict: no broken link or missing page), and every
``loadgen …`` command shown in README.md and docs/ is one the CLI accepts: its flags parse, and a
run, sweep or compare line resolves into a plan (option values checked, as before any load)."""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from loadgen.cli.app import build_parser
from loadgen.cli.plan import build_plan
from loadgen.errors import ConfigError
from loadgen.run.compare import parse_variants

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_BREAKS = re.compile(r"\s(?:\||&&|;|>|2>|&)(?:\s|$)")


def commands(text: str) -> list[str]:
    """Each ``loadgen …`` command in the text's code blocks (continuation lines joined) and in its
    inline code spans."""
    found = []
    in_block, pending = False, ""
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_block, pending = not in_block, ""
            continue
        if in_block:
            stripped = line.strip()
            if pending:
                stripped = pending + " " + stripped
                pending = ""
            if stripped.endswith("\\"):
                pending = stripped[:-1].strip()
                continue
            command = re.sub(r"^\$\s+", "", stripped)
            if command.startswith("loadgen ") or " && loadgen " in command:
                found.append("loadgen " + command.split("loadgen ", 1)[1])
        else:
            found += [span for span in re.findall(r"`(loadgen [^`]+)`", line)]
    return [SHELL_BREAKS.split(command)[0] for command in found]


ALL = [(page.relative_to(ROOT).as_posix(), command) for page in PAGES for command in commands(page.read_text())]


def test_the_docs_show_commands_to_check() -> None:
    assert len(ALL) > 60 and {page for page, _ in ALL} >= {"README.md", "docs/usage.md", "docs/locust.md"}


@pytest.mark.parametrize("page, command", ALL, ids=[f"{page}:{index}" for index, (page, _) in enumerate(ALL)])
def test_every_command_shown_is_one_the_cli_accepts(page: str, command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # scenario and prompt files are named from the repository's root
    for variable in ("MY_KEY", "OPENAI_API_KEY", "HF_TOKEN", "LOADGEN_WEB_PASSWORD"):
        monkeypatch.setenv(variable, "x")
    argv = shlex.split(command, comments=True)[1:]
    parser = build_parser()
    if len(argv) == 1 and not argv[0].startswith("-"):  # prose naming a command: ``loadgen plan``
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
        assert argv[0] in commands, f"{page}: `{command}`: no such command"
        return
    try:
        args, extra = parser.parse_known_args(argv)
    except SystemExit as exc:
        if exc.code == 0 and "--help" in argv:
            return
        raise AssertionError(f"{page}: `{command}` does not parse") from exc
    assert args.command is not None, f"{page}: `{command}`: no command"
    if args.command != "locust":
        assert not extra, f"{page}: `{command}`: unrecognized {extra}"
    if args.command in ("run", "sweep", "compare"):
        try:
            plan = build_plan(args, sweep=args.command != "run")
            if args.command == "compare":
                parse_variants(args.variant, dict(plan.config_record).get("variants"), "variants")
        except ConfigError as exc:
            users_own = str(exc).endswith("no such file") and not re.search(r"(scenarios|profiles)/", str(exc))
            if not users_own:  # a trace or prompt file of the reader's own is not in the repository
                raise AssertionError(f"{page}: `{command}`: {exc}") from exc


def test_the_documentation_site_builds(tmp_path: Path) -> None:
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    assert (tmp_path / "site" / "numbers" / "index.html").is_file()


def test_the_readme_stays_short() -> None:
    assert len((ROOT / "README.md").read_bytes()) <= 15_000
