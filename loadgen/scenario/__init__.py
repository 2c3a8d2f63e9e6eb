"""Scenario tier: options, scenario files and the plan they resolve to (no argparse here)."""
