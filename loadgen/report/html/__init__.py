"""Report layer: ``loadgen report DIR [DIR…]`` — one self-contained HTML file (no CDN, works
offline): for each run, sweep or comparison, the metadata, the exact command options, latency
percentile tables and distributions (from the ``.hlog`` files), latency-against-load and
throughput-against-latency curves with the knee, telemetry per level, errors by kind, and
speedups with their intervals and the crossover. Every string taken from results is escaped.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from loadgen import __version__
from loadgen.errors import ConfigError
from loadgen.metrics.comparison import read_compare
from loadgen.metrics.results import RunConfig, SweepResult, read_config, read_summary, read_sweep
from loadgen.report.html.blocks import STYLE
from loadgen.report.html.compare import compare_page
from loadgen.report.html.plan import plan_section
from loadgen.report.html.run import merged_section, run_page
from loadgen.report.html.sweep import sweep_page
from loadgen.report.plan import read_plan
from loadgen.report.plots import plotly_script
from loadgen.report.rebuild import REBUILT, rebuilt_levels


def _section(directory: Path, number: int, notes: list[str]) -> str:
    html = _results_section(directory, number, notes)
    if (directory / "plan.json").is_file():
        plan = read_plan(directory / "plan.json")
        html += f"<h2>capacity plan: {escape(str(directory))}</h2>" + plan_section(plan, f"r{number}")
    if not html:
        raise ConfigError(f"loadgen report {directory}: no summary.json, sweep.json, compare.json or plan.json there")
    return html


def _results_section(directory: Path, number: int, notes: list[str]) -> str:
    prefix = f"r{number}"
    config = read_config(directory / "config.json") if (directory / "config.json").is_file() else None
    if (directory / "compare.json").is_file():
        return compare_page(directory, read_compare(directory / "compare.json"), prefix, config)
    if (directory / "sweep.json").is_file():
        return sweep_page(directory, read_sweep(directory / "sweep.json"), config, prefix)
    if (directory / "summary.json").is_file():
        return run_page(directory, read_summary(directory / "summary.json"), config, prefix)
    rebuilt = rebuilt_levels(directory, config)  # a command killed before it wrote its summaries
    if rebuilt:
        notes.append(f"{directory}: {len(rebuilt)} level(s) {REBUILT}")
    if len(rebuilt) == 1 and (directory / "requests.jsonl").is_file():
        return REBUILT_NOTE + run_page(directory, rebuilt[0], config, prefix)
    if rebuilt:
        return REBUILT_NOTE + sweep_page(directory, SweepResult(config=config or RunConfig(), levels=tuple(rebuilt)),
                                         config, prefix)  # fmt: skip
    return ""


REBUILT_NOTE = f"<p><b>partial:</b> {escape(REBUILT)}</p>"


RESULT_FILES = ("summary.json", "sweep.json", "compare.json", "plan.json")


def render_report(directories: list[Path], merge: bool = False, notes: list[str] | None = None) -> str:
    """With ``merge``, directories that hold only interval logs (a Locust worker's, copied from
    its machine) join the merged section without a section of their own. ``notes`` gets a line
    for each directory whose levels were rebuilt from their records."""
    notes = notes if notes is not None else []
    shown = [d for d in directories if not merge or any((d / name).is_file() for name in RESULT_FILES)]
    sections = "".join(_section(directory, number, notes) for number, directory in enumerate(shown, 1))
    if merge:
        sections = merged_section(directories) + sections
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>loadgen report</title>'
        f"<style>{STYLE}</style></head><body><h1>loadgen report</h1><p>loadgen {__version__}</p>"
        f"{sections}{plotly_script()}</body></html>"
    )
