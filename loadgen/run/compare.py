"""Top layer: ``loadgen compare`` — a baseline against candidates (an assisted-generation
deployment, other request parameters, other hardware) on the same prompts, seed and load levels,
interleaved level by level so that drift affects all alike.

Per level and candidate: speedups (baseline ÷ candidate) of TTFT, TPOT and end-to-end medians with
95 % bootstrap intervals (1,000 resamples of the requests, seeded), the throughput ratio, and a
paired comparison: request i carries the same prompt in every variant, so the share of requests
the candidate served faster end to end. The crossover is the first level where the candidate's
end-to-end speedup falls below 1. Unequal output lengths (beyond 2 %) make the comparison unfair
and are flagged: use ``--ignore-eos`` or fixed lengths.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from loadgen.config import EndpointConfig
from loadgen.errors import ConfigError
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

BOOTSTRAP_RESAMPLES = 1000
CACHE_SHARE_TOLERANCE = 0.05  # prompt share served from the prefix cache, between the variants
MIN_SUCCESSFUL = 4  # below this many successful requests in a variant, a level gives no speedup
LENGTH_TOLERANCE = 0.02
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


def _measured(directory: Path) -> dict[int, dict[str, Any]]:
    values = {}
    for line in (directory / "requests.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["warmup"] or record["error_kind"] or record["first_token_ns"] is None:
            continue
        tokens = record["output_tokens"] or 0
        entry: dict[str, Any] = {
            "text": record.get("output_text"),
            "ttft": (record["first_token_ns"] - record["intended_ns"]) / 1e6,
            "e2e": (record["end_ns"] - record["intended_ns"]) / 1e6,
            "tokens": tokens,
        }
        if tokens >= 2:
            entry["tpot"] = (record["end_ns"] - record["first_token_ns"]) / 1e6 / (tokens - 1)
        values[record["index"]] = entry
    return values


def _blocks(values: dict[int, dict[str, Any]], metric: str, block: int) -> list[list[float]]:
    """The metric's values in blocks of ``block`` requests in send order: requests that ran side
    by side (one batch at concurrency ``block``) share their fate, so they are resampled together."""
    ordered = [values[index][metric] for index in sorted(values) if metric in values[index]]
    return [ordered[i : i + block] for i in range(0, len(ordered), block)]


def _speedup(base: list[list[float]], cand: list[list[float]], rng: random.Random) -> dict[str, Any]:
    """Median ratio with a 95 % block-bootstrap interval (whole blocks resampled, see ``_blocks``)."""
    base_n, cand_n = sum(map(len, base)), sum(map(len, cand))
    if base_n < MIN_SUCCESSFUL or cand_n < MIN_SUCCESSFUL:
        reason = (f"too few successful requests for a speedup ({base_n} baseline, {cand_n} candidate; "
                  f"at least {MIN_SUCCESSFUL} each)")  # fmt: skip
        return {"speedup": None, "low": None, "high": None, "reason": reason}

    def resampled_median(blocks: list[list[float]]) -> float:
        return statistics.median([value for block in rng.choices(blocks, k=len(blocks)) for value in block])

    estimate = statistics.median([v for b in base for v in b]) / statistics.median([v for b in cand for v in b])
    if len(base) < 2 or len(cand) < 2:
        return {"speedup": round(estimate, 4), "low": None, "high": None, "blocks": [len(base), len(cand)],
                "reason": "every request ran in one batch: one run gives no interval (send more requests)"}  # fmt: skip
    ratios = sorted(resampled_median(base) / resampled_median(cand) for _ in range(BOOTSTRAP_RESAMPLES))
    low, high = ratios[int(0.025 * BOOTSTRAP_RESAMPLES)], ratios[int(0.975 * BOOTSTRAP_RESAMPLES) - 1]
    return {
        "speedup": round(estimate, 4),
        "low": round(low, 4),
        "high": round(high, 4),
        "blocks": [len(base), len(cand)],
    }


def compare_level(
    base_dir: Path, cand_dir: Path, base: dict[str, Any], cand: dict[str, Any], seed: int
) -> dict[str, Any]:
    rng = random.Random(seed)
    base_values, cand_values = _measured(base_dir), _measured(cand_dir)
    block = max(1, (base.get("load") or {}).get("concurrency") or 1)  # closed loop: a batch of users
    result: dict[str, Any] = {
        metric: _speedup(_blocks(base_values, metric, block), _blocks(cand_values, metric, block), rng)
        for metric in ("ttft", "tpot", "e2e")
    }
    result["bootstrap"] = f"blocks of {block} consecutive requests resampled whole (requests that ran side by side)"
    base_tps, cand_tps = base["throughput"]["output_tokens_per_s"], cand["throughput"]["output_tokens_per_s"]
    result["throughput_ratio"] = round(cand_tps / base_tps, 4) if base_tps and cand_tps else None
    paired = [(base_values[i]["e2e"], cand_values[i]["e2e"]) for i in base_values.keys() & cand_values.keys()]
    result["paired_requests"] = len(paired)
    roles = {"baseline": base, "candidate": cand}
    cached = {role: (summary.get("tokens") or {}).get("cached_input_total") for role, summary in roles.items()}
    result["cached_input_tokens"] = cached
    prompts = {role: (summary.get("tokens") or {}).get("input_total") or 0 for role, summary in roles.items()}
    shares = [(cached[role] or 0) / prompts[role] if prompts[role] else 0.0 for role in roles]
    result["cache_hits_differ"] = abs(shares[0] - shares[1]) > CACHE_SHARE_TOLERANCE
    result["requests"] = {
        role: {key: (summary.get("requests") or {}).get(key) for key in ("completed", "failed")}
        for role, summary in roles.items()
    }
    result["paired_candidate_faster"] = round(sum(c < b for b, c in paired) / len(paired), 4) if paired else None
    base_tokens = statistics.fmean(v["tokens"] for v in base_values.values()) if base_values else 0.0
    cand_tokens = statistics.fmean(v["tokens"] for v in cand_values.values()) if cand_values else 0.0
    result["output_tokens_mean"] = {"baseline": round(base_tokens, 2), "candidate": round(cand_tokens, 2)}
    result["lengths_match"] = bool(base_tokens) and abs(cand_tokens - base_tokens) <= LENGTH_TOLERANCE * base_tokens
    texts = [(base_values[i]["text"], cand_values[i]["text"]) for i in base_values.keys() & cand_values.keys()
             if base_values[i]["text"] is not None and cand_values[i]["text"] is not None]  # fmt: skip
    # greedy assisted decoding must reproduce the baseline's text exactly (needs --save-text)
    result["identical_outputs"] = round(sum(a == b for a, b in texts) / len(texts), 4) if texts else None
    return result


def crossover(levels: list[dict[str, Any]]) -> str | None:
    for level in levels:
        e2e = level["comparison"]["e2e"]
        if e2e["speedup"] is not None and e2e["speedup"] < 1:
            return str(level["level"])
    return None


async def run_compare(plan: Plan, variants: list[Variant], console: Console) -> int:
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
        variants_json = [{"name": v.name, "target": v.target, "extra_body": dict(v.extra_body)} for v in variants]
        config = config_json(plan, endpoints[baseline.name])
        write_json(output / "config.json", {**config, "variants": variants_json})
        levels: list[dict[str, Any]] = []
        for number, load in enumerate(plan.levels, 1):
            summaries = {}
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
                judge_level(summaries[variant.name], target_lag(before, after), plan.max_error_rate,
                            directory, f"{variant.name} {load.describe()}", console)  # fmt: skip
                write_level_summary(directory, summaries[variant.name], console)
                if stop.is_set():
                    break
            if stop.is_set():
                break
            for candidate in candidates:
                comparison = compare_level(output / baseline.name / level_directory_name(number, load),
                                           output / candidate.name / level_directory_name(number, load),
                                           summaries[baseline.name], summaries[candidate.name], load.seed)  # fmt: skip
                # the server's own speculative-decoding counters (vLLM, llama.cpp, the simulator), when it has them
                comparison["candidate_acceptance_rate"] = acceptance.get(candidate.name)
                pair = (baseline.name, candidate.name)
                comparison["validity"] = {name: summaries[name].get("validity") for name in pair}
                levels.append({"level": level_label(summaries[baseline.name]), "candidate": candidate.name,
                               "comparison": comparison})  # fmt: skip
            write_json(
                output / "compare.json", {"baseline": baseline.name, "variants": variants_json, "levels": levels}
            )
    for candidate in candidates:
        rows = [level for level in levels if level["candidate"] == candidate.name]
        console.print(compare_table(baseline.name, candidate.name, rows))
        marks = {str(row["level"]): invalid_variants(row["comparison"]) for row in rows}
        invalid = [f"{level} ({mark})" for level, mark in marks.items() if mark]
        if invalid:
            console.print(f"INVALID levels, not a fair comparison: {', '.join(invalid)}: see each level's "
                          "summary.json validity", style="bold red")  # fmt: skip
        point = crossover(rows)
        unknown = [row for row in rows if row["comparison"]["e2e"]["speedup"] is None]
        for row in unknown:
            console.print(f"{row['level']}: no speedup: {row['comparison']['e2e']['reason']}", style="yellow")
        if point:
            console.print(f"crossover: {candidate.name} stops helping end to end at {point}")
        elif unknown:
            console.print(f"{candidate.name} is faster end to end at the levels with a speedup; "
                          f"{len(unknown)} level(s) gave none")  # fmt: skip
        else:
            console.print(f"{candidate.name} is faster end to end at every level measured")
        cache_differs = [str(row["level"]) for row in rows if row["comparison"].get("cache_hits_differ")]
        if cache_differs:
            console.print(f"warning: the variants' prefix-cache hits differ at {', '.join(cache_differs)} "
                          "(usage cached_tokens): TTFT is then not like for like; restart the servers or change "
                          "--seed between runs", style="bold yellow")  # fmt: skip
        identical = [row["comparison"]["identical_outputs"] for row in rows]
        if any(share is not None and share < 1 for share in identical):
            console.print(f"warning: {candidate.name}'s answers differ from the baseline's for some prompts "
                          f"(identical: {', '.join('–' if s is None else f'{s:.0%}' for s in identical)})",
                          style="bold yellow")  # fmt: skip
        if any(not row["comparison"]["lengths_match"] for row in rows):
            console.print("warning: output lengths differ between variants: the comparison is not like for like "
                          "(use --ignore-eos or fixed lengths)", style="bold yellow")  # fmt: skip
    console.print(f"Results in {output}", style="dim")
    return 130 if stop.is_set() else 0


def compare_table(baseline: str, candidate: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=f"{candidate} vs {baseline}: speedup (baseline ÷ candidate, 95% CI)", title_justify="left")
    with_acceptance = any(row["comparison"].get("candidate_acceptance_rate") is not None for row in rows)
    for column in ("level", "TTFT", "TPOT", "end-to-end", "tok/s ratio", "paired wins", "failed\nbase/cand"):
        table.add_column(column, justify="right")
    if with_acceptance:
        table.add_column("accepted", justify="right")
    table.add_column("valid", justify="left")

    def cell(entry: dict[str, Any]) -> str:
        if entry["speedup"] is None:
            return "–"
        if entry["low"] is None:
            return f"{entry['speedup']:.2f}× (no CI)"
        return f"{entry['speedup']:.2f}× ({entry['low']:.2f}–{entry['high']:.2f})"

    def failures(comparison: dict[str, Any]) -> str:
        counts = comparison.get("requests") or {}
        return "/".join(str((counts.get(role) or {}).get("failed", "–")) for role in ("baseline", "candidate"))

    for row in rows:
        comparison = row["comparison"]
        wins = comparison["paired_candidate_faster"]
        speedup = comparison["e2e"]["speedup"]
        style = "dim" if speedup is None else "green" if speedup >= 1 else "red"
        ratio = comparison["throughput_ratio"]
        cells = [str(row["level"]), cell(comparison["ttft"]), cell(comparison["tpot"]),
                 cell(comparison["e2e"]), "–" if ratio is None else f"{ratio:.2f}",
                 "–" if wins is None else f"{wins:.0%}", failures(comparison)]  # fmt: skip
        if with_acceptance:
            rate = comparison.get("candidate_acceptance_rate")
            cells.append("–" if rate is None else f"{rate:.0%}")
        invalid = invalid_variants(row["comparison"])
        cells.append(f"✗ {invalid}" if invalid else "ok")
        table.add_row(*cells, style="dim" if invalid else style)
    return table
