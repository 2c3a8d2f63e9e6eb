"""Run tier: ``loadgen compare`` — a baseline against candidates (an assisted-generation
deployment, other request parameters, other hardware) on the same prompts, seed and load levels,
interleaved level by level so that drift affects all alike.

The figures of each level and candidate (speedups with intervals, the paired comparison, the
crossover) are ``loadgen.metrics.comparison``'s. Unequal output lengths (beyond 2 %) make the
comparison unfair and are flagged: use ``--ignore-eos`` or fixed lengths.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console
from rich.table import Table

from loadgen.config import EndpointConfig
from loadgen.errors import ConfigError
from loadgen.eventloop import run_loop
from loadgen.metrics.comparison import (
    ComparedLevel,
    CompareResult,
    Speedup,
    VariantRecord,
    compare_level,
    crossover,
)
from loadgen.metrics.results import RunSummary
from loadgen.metrics.validity import target_lag
from loadgen.redact import redactor
from loadgen.report.console import invalid_variants, level_label
from loadgen.report.files import write_json
from loadgen.run.endpoint import prepare_endpoint, scrape_quietly
from loadgen.run.level import level_directory_name, run_level, write_level_summary
from loadgen.run.loop import stop_on_signals
from loadgen.run.session import config_json, judge_level
from loadgen.scenario.plan import Plan
from loadgen.sim.process import SimProcess, SimSpec
from loadgen.sim.server import SimOptions
from loadgen.telemetry.prometheus import acceptance_rate
from loadgen.tokenizer import load_token_counter

DEFAULT_VARIANTS = (("baseline", "sim:llama3-8b-h100"), ("assisted", "sim:llama3-8b-h100-spec"))


VARIANT_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")
SAME_ENDPOINT = "endpoint"  # a variant's target: the --endpoint itself, with other request parameters


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    target: str  # a URL, sim:PROFILE, or "endpoint" (the --endpoint)
    extra_body: tuple[tuple[str, object], ...] = ()  # merged into this variant's requests

    @property
    def simulated(self) -> bool:
        return self.target.startswith("sim:")


def parse_variants(texts: list[str] | None, scenario: object = None, where: str = "variants") -> list[Variant]:
    """``--variant NAME=TARGET`` or ``NAME=TARGET {JSON}`` (flags), else the scenario's ``variants:``
    list of ``{name, endpoint, extra_body}``, else the simulator without and with a draft model."""
    if texts:
        variants = [_variant_from_text(text) for text in texts]
    elif scenario:
        if not isinstance(scenario, list):
            raise ConfigError(f"{where}: expected a list of {{name, endpoint, extra_body}}")
        variants = [_variant_from_mapping(entry, f"{where}[{i}]") for i, entry in enumerate(scenario)]
    else:
        variants = [Variant(name, target) for name, target in DEFAULT_VARIANTS]
    if len(variants) < 2 or len({v.name for v in variants}) != len(variants):
        raise ConfigError("--variant: give a baseline and at least one candidate, with different names")
    return variants


def _variant_from_text(text: str) -> Variant:
    name, _, rest = text.partition("=")
    target, _, body = rest.strip().partition(" ")
    extra: Any = {}
    if body.strip():
        try:
            extra = json.loads(body)
        except ValueError:
            extra = None
        if not isinstance(extra, dict):
            raise ConfigError(f"--variant {text}: after the target, expected a JSON object of request fields")
    return _checked(Variant(name.strip(), target.strip(), tuple(extra.items())), f"--variant {text}")


def _variant_from_mapping(entry: object, where: str) -> Variant:
    if not isinstance(entry, dict) or "name" not in entry:
        raise ConfigError(f"{where}: expected {{name, endpoint, extra_body}}, got {entry!r}")
    extra = entry.get("extra_body") or {}
    if not isinstance(extra, dict):
        raise ConfigError(f"{where}.extra_body: expected a mapping of request fields")
    target = str(entry.get("endpoint", SAME_ENDPOINT))
    return _checked(Variant(str(entry["name"]), target, tuple(extra.items())), where)


def _checked(variant: Variant, where: str) -> Variant:
    if not VARIANT_NAME.fullmatch(variant.name):
        raise ConfigError(f"{where}: a variant name names its results folder: letters, digits, '.', '_' and '-' "
                          f"(not starting with '.'), got {variant.name!r}")  # fmt: skip
    target = variant.target
    if not variant.name or not (
        variant.simulated or target == SAME_ENDPOINT or target.startswith(("http://", "https://"))
    ):
        raise ConfigError(f"{where}: expected NAME=URL, NAME=sim:PROFILE or NAME=endpoint (the --endpoint)")
    return variant


@dataclass(frozen=True)
class CompareRun:
    """What ``compare`` did: the exit code ``loadgen compare`` would give, ``compare.json`` as
    written, and each variant's level summaries (in the order run)."""

    exit_code: int
    result: CompareResult
    summaries: dict[str, tuple[RunSummary, ...]]
    output_dir: Path


def compare_variants(plan: Plan, variants: list[Variant] | None = None, console: Console | None = None) -> CompareRun:
    """Runs ``loadgen compare``: each level, every variant in turn, then the comparison, with the
    result files written as the command writes them. ``variants`` None: the simulator without and
    with a draft model; ``console`` None: nothing is printed."""
    return run_loop(run_compare(plan, variants or parse_variants(None), console or Console(quiet=True)))


async def run_compare(plan: Plan, variants: list[Variant], console: Console) -> CompareRun:
    """Each level: every variant in turn, then the comparison; compare.json rewritten each level."""

    output: Path = plan.output_dir
    output.mkdir(parents=True, exist_ok=True)
    stop = asyncio.Event()
    stop_on_signals(stop)
    redact = redactor(plan.secrets)
    token_counter = load_token_counter(plan.tokenizer) if plan.tokenizer else None
    with contextlib.ExitStack() as stack:
        endpoints: dict[str, EndpointConfig] = {}
        for variant in variants:
            base: EndpointConfig = plan.endpoint
            if variant.simulated:
                sim = stack.enter_context(SimProcess(SimSpec(variant.target.removeprefix("sim:"), SimOptions())))
                endpoint = replace(base, url=sim.url, model="sim-llm")
            elif variant.target == SAME_ENDPOINT:
                if plan.use_simulator:
                    raise ConfigError(f"variant {variant.name}: 'endpoint' needs --endpoint")
                endpoint = base
            else:
                endpoint = replace(base, url=variant.target)
            endpoints[variant.name] = await prepare_endpoint(plan, endpoint, token_counter, redact, console)
        baseline, candidates = variants[0], variants[1:]
        records = tuple(VariantRecord(name=v.name, target=v.target, extra_body=dict(v.extra_body)) for v in variants)
        config = config_json(plan, endpoints[baseline.name])
        variants_json = tuple(msgspec.to_builtins(record) for record in records)
        write_json(output / "config.json", msgspec.structs.replace(config, variants=variants_json).to_json())
        levels: list[ComparedLevel] = []
        result = CompareResult(baseline=baseline.name, variants=records)
        by_variant: dict[str, list[RunSummary]] = {variant.name: [] for variant in variants}
        for number, load in enumerate(plan.levels, 1):
            summaries: dict[str, RunSummary] = {}
            acceptance: dict[str, float | None] = {}
            for variant in variants:
                directory = output / variant.name / level_directory_name(number, load)
                metrics_url = endpoints[variant.name].url.rstrip("/") + "/metrics"
                before = await scrape_quietly(metrics_url)
                generation = plan.generation
                generation = replace(generation, extra_body=generation.extra_body + variant.extra_body)
                summaries[variant.name] = await run_level(
                    replace(plan, sweep=True, generation=generation), endpoints[variant.name], load, directory,
                    f"{variant.name} {load.describe()}", stop, token_counter, redact, console,
                )  # fmt: skip
                after = await scrape_quietly(metrics_url)
                acceptance[variant.name] = acceptance_rate(before, after) if before and after else None
                summaries[variant.name] = judge_level(summaries[variant.name], target_lag(before, after),
                                                      plan.max_error_rate, f"{variant.name} {load.describe()}",
                                                      console)  # fmt: skip
                write_level_summary(directory, summaries[variant.name], console)
                by_variant[variant.name].append(summaries[variant.name])
                if stop.is_set():
                    break
            if stop.is_set():
                break
            for candidate in candidates:
                comparison = compare_level(output / baseline.name / level_directory_name(number, load),
                                           output / candidate.name / level_directory_name(number, load),
                                           summaries[baseline.name], summaries[candidate.name], load.seed)  # fmt: skip
                # the server's own speculative-decoding counters (vLLM, llama.cpp, the simulator), when it has them
                pair = (baseline.name, candidate.name)
                rate, validity = acceptance.get(candidate.name), {name: summaries[name].validity for name in pair}
                comparison = msgspec.structs.replace(comparison, candidate_acceptance_rate=rate, validity=validity)
                levels.append(ComparedLevel(level=level_label(summaries[baseline.name]), candidate=candidate.name,
                                            comparison=comparison))  # fmt: skip
            result = CompareResult(baseline=baseline.name, variants=records, levels=tuple(levels))
            write_json(output / "compare.json", result.to_json())
    for candidate in candidates:
        rows = [level for level in levels if level.candidate == candidate.name]
        console.print(compare_table(baseline.name, candidate.name, rows))
        marks = {row.level: invalid_variants(row.comparison) for row in rows}
        invalid = [f"{level} ({mark})" for level, mark in marks.items() if mark]
        if invalid:
            console.print(f"INVALID levels, not a fair comparison: {', '.join(invalid)}: see each level's "
                          "summary.json validity", style="bold red")  # fmt: skip
        point = crossover(rows)
        unknown = [row for row in rows if row.comparison.e2e.speedup is None]
        for row in unknown:
            console.print(f"{row.level}: no speedup: {row.comparison.e2e.reason}", style="yellow")
        if point:
            console.print(f"crossover: {candidate.name} stops helping end to end at {point}")
        elif unknown:
            console.print(f"{candidate.name} is faster end to end at the levels with a speedup; "
                          f"{len(unknown)} level(s) gave none")  # fmt: skip
        else:
            console.print(f"{candidate.name} is faster end to end at every level measured")
        cache_differs = [row.level for row in rows if row.comparison.cache_hits_differ]
        if cache_differs:
            console.print(f"warning: the variants' prefix-cache hits differ at {', '.join(cache_differs)} "
                          "(usage cached_tokens): TTFT is then not like for like; restart the servers or change "
                          "--seed between runs", style="bold yellow")  # fmt: skip
        identical = [row.comparison.identical_outputs for row in rows]
        if any(share is not None and share < 1 for share in identical):
            console.print(f"warning: {candidate.name}'s answers differ from the baseline's for some prompts "
                          f"(identical: {', '.join('–' if s is None else f'{s:.0%}' for s in identical)})",
                          style="bold yellow")  # fmt: skip
        if any(not row.comparison.lengths_match for row in rows):
            console.print("warning: output lengths differ between variants: the comparison is not like for like "
                          "(use --ignore-eos or fixed lengths)", style="bold yellow")  # fmt: skip
    console.print(f"Results in {output}", style="dim")
    code = 130 if stop.is_set() else 0
    return CompareRun(code, result, {name: tuple(runs) for name, runs in by_variant.items()}, output)


def compare_table(baseline: str, candidate: str, rows: list[ComparedLevel]) -> Table:
    table = Table(title=f"{candidate} vs {baseline}: speedup (baseline ÷ candidate, 95% CI)", title_justify="left")
    with_acceptance = any(row.comparison.candidate_acceptance_rate is not None for row in rows)
    for column in ("level", "TTFT", "TPOT", "end-to-end", "tok/s ratio", "paired wins", "failed\nbase/cand"):
        table.add_column(column, justify="right")
    if with_acceptance:
        table.add_column("accepted", justify="right")
    table.add_column("valid", justify="left")

    def cell(entry: Speedup) -> str:
        return entry.text("no CI")  # the console's columns are narrow

    for row in rows:
        comparison = row.comparison
        wins = comparison.paired_candidate_faster
        speedup = comparison.e2e.speedup
        style = "dim" if speedup is None else "green" if speedup >= 1 else "red"
        ratio = comparison.throughput_ratio
        cells = [row.level, cell(comparison.ttft), cell(comparison.tpot),
                 cell(comparison.e2e), "–" if ratio is None else f"{ratio:.2f}",
                 "–" if wins is None else f"{wins:.0%}", comparison.requests.failed_text()]  # fmt: skip
        if with_acceptance:
            rate = comparison.candidate_acceptance_rate
            cells.append("–" if rate is None else f"{rate:.0%}")
        invalid = invalid_variants(comparison)
        cells.append(f"✗ {invalid}" if invalid else "ok")
        table.add_row(*cells, style="dim" if invalid else style)
    return table
