"""CLI tier: the ``loadgen`` command (``loadgen.cli.main``), the only package that sees ``argparse``."""

from loadgen.cli.app import build_parser, main
from loadgen.cli.plan import build_plan

__all__ = ["build_parser", "build_plan", "main"]
