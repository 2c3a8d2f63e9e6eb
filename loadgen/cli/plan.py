"""CLI tier: a command line's options, handed to the scenario tier to resolve into a ``Plan``."""

from __future__ import annotations

import argparse

from loadgen.scenario.options import OPTIONS
from loadgen.scenario.plan import Plan, plan_from_flags


def build_plan(args: argparse.Namespace, sweep: bool) -> Plan:
    """The plan of a ``run``, ``sweep``, ``compare`` or ``locust`` command line."""
    flags = {
        option.name: getattr(args, option.name) for option in OPTIONS if getattr(args, option.name, None) is not None
    }
    return plan_from_flags(flags, args.scenario, sweep)
