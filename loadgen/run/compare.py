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

from loadgen.config import LoadConfig
from loadgen.errors import ConfigError
from loadgen.eventloop import run_loop
from loadgen.metrics.comparison import ComparedLevel, CompareResult, VariantRecord, compare_level
from loadgen.metrics.results import RunSummary
from loadgen.report.files import prepare_output_dir, write_json
from loadgen.run.collect import LevelSpec
from loadgen.run.events import Finished, RunEvents, SilentEvents
from loadgen.run.level import LevelResult, level_directory_name, measure_level
from loadgen.run.loop import stop_on_signals
from loadgen.run.outcome import decide
from loadgen.run.session import config_json
from loadgen.run.target import Target, prepared_unless_stopped, span_receiver
from loadgen.scenario.plan import Plan
from loadgen.sim.process import SimProcess, SimSpec
from loadgen.sim.server import SimOptions
from loadgen.telemetry.otlp import SpanReceiver

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


def compare_variants(plan: Plan, variants: list[Variant] | None = None, events: RunEvents | None = None) -> CompareRun:
    """Runs ``loadgen compare``: each level, every variant in turn, then the comparison, with the
    result files written as the command writes them. ``variants`` None: the simulator without and
    with a draft model; ``events`` None: nothing is said."""
    return run_loop(run_compare(plan, variants or parse_variants(None), events or SilentEvents()))


async def run_compare(plan: Plan, variants: list[Variant], events: RunEvents) -> CompareRun:
    """Each level: every variant in turn (``measure_level``), then the comparison; compare.json
    rewritten each level; one exit decision over every variant's levels."""
    stop = asyncio.Event()
    stop_on_signals(stop)
    records = tuple(VariantRecord(name=v.name, target=v.target, extra_body=dict(v.extra_body)) for v in variants)
    result = CompareResult(baseline=variants[0].name, variants=records)
    measured: list[tuple[str, RunSummary]] = []
    with contextlib.ExitStack() as stack:
        stack.enter_context(prepare_output_dir(plan.output_dir))
        spans = stack.enter_context(span_receiver(plan, events))
        targets = await _prepare_targets(plan, variants, events, stop, stack, spans)
        if targets is not None:
            config = config_json(plan, targets[variants[0].name].endpoint)
            variants_json = tuple(msgspec.to_builtins(record) for record in records)
            config = msgspec.structs.replace(config, variants=variants_json)
            write_json(plan.output_dir / "config.json", config.to_json())
            result = await _compare_levels(plan, variants, targets, result, measured)
    outcome = decide([s for _, s in measured], interrupted=stop.is_set(), names=[name for name, _ in measured])
    events.finished(Finished(tuple(s for _, s in measured), outcome, plan.output_dir, plan.slo, True,
                             compared=result, thresholds_asked=bool(plan.fail_on)))  # fmt: skip
    by_variant = {v.name: tuple(s for name, s in measured if name == v.name) for v in variants}
    return CompareRun(outcome.code, result, by_variant, plan.output_dir)


async def _prepare_targets(plan: Plan, variants: list[Variant], events: RunEvents, stop: asyncio.Event,
                           stack: contextlib.ExitStack,
                           spans: SpanReceiver | None) -> dict[str, Target] | None:  # fmt: skip
    """Each variant's target, prepared (preflight); None if a stop came first."""
    targets: dict[str, Target] = {}
    for variant in variants:
        endpoint = plan.endpoint
        if variant.simulated:
            options = SimOptions(otlp_endpoint=spans.url if spans is not None else None)
            sim = stack.enter_context(SimProcess(SimSpec(variant.target.removeprefix("sim:"), options)))
            endpoint = replace(endpoint, url=sim.url, model="sim-llm")
        elif variant.target == SAME_ENDPOINT:
            if plan.use_simulator:
                raise ConfigError(f"variant {variant.name}: 'endpoint' needs --endpoint")
        else:
            endpoint = replace(endpoint, url=variant.target)
        generation = replace(plan.generation, extra_body=plan.generation.extra_body + variant.extra_body)
        variant_plan = replace(plan, sweep=True, generation=generation)
        target = await prepared_unless_stopped(variant_plan, endpoint, events, stop, variant=variant.name,
                                               spans=spans)  # fmt: skip
        if target is None:
            return None
        targets[variant.name] = target
    return targets


async def _compare_levels(plan: Plan, variants: list[Variant], targets: dict[str, Target], result: CompareResult,
                          measured: list[tuple[str, RunSummary]]) -> CompareResult:  # fmt: skip
    baseline, candidates = variants[0], variants[1:]
    stop = targets[baseline.name].stop
    for number, load in enumerate(plan.levels, 1):
        levels: dict[str, LevelResult] = {}
        for variant in variants:
            spec = LevelSpec(load, plan.output_dir / variant.name / level_directory_name(number, load),
                             f"{variant.name} {load.describe()}")  # fmt: skip
            levels[variant.name] = await measure_level(targets[variant.name], spec)
            measured.append((variant.name, levels[variant.name].summary))
            if stop.is_set():
                return result
        compared = tuple(_compared(plan, number, load, baseline.name, c.name, levels) for c in candidates)
        result = msgspec.structs.replace(result, levels=result.levels + compared)
        write_json(plan.output_dir / "compare.json", result.to_json())
    return result


def _compared(plan: Plan, number: int, load: LoadConfig, baseline: str, candidate: str,
              levels: dict[str, LevelResult]) -> ComparedLevel:  # fmt: skip
    directory = level_directory_name(number, load)
    base, cand = levels[baseline].summary, levels[candidate].summary
    comparison = compare_level(plan.output_dir / baseline / directory, plan.output_dir / candidate / directory,
                               base, cand, load.seed)  # fmt: skip
    # the server's own speculative-decoding counters (vLLM, llama.cpp, the simulator), when it has them
    comparison = msgspec.structs.replace(comparison, candidate_acceptance_rate=levels[candidate].acceptance_rate,
                                         validity={baseline: base.validity, candidate: cand.validity})  # fmt: skip
    return ComparedLevel(level=base.label, candidate=candidate, comparison=comparison)
