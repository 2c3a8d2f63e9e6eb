"""Report layer: a capacity plan as a console table and as ``plan.json`` (``PlanDocument``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from loadgen.metrics.results import as_json, convert_result, read_json_file
from loadgen.plan.capacity import Capacity
from loadgen.plan.planner import CandidatePlan, Plan


class PlanTarget(msgspec.Struct, frozen=True, kw_only=True):
    peak_requests_per_s: float | None = None
    average_requests_per_s: float | None = None
    users: int | None = None
    headroom: float | None = None
    output_tokens_per_request: float | None = None
    input_tokens_per_request: float | None = None


class PlanDocument(msgspec.Struct, frozen=True, kw_only=True):
    """``plan.json``: the target, the SLOs, the measured capacity and every hardware option ranked."""

    schema_version: int = 1
    target: PlanTarget = PlanTarget()
    slo_ms: dict[str, float] = msgspec.field(default_factory=dict)  # "ttft_p95" -> ms
    sweeps: tuple[str, ...] = ()
    measured_capacity: Capacity | None = None
    calibration: float | None = None
    candidates: tuple[CandidatePlan, ...] = ()
    assumptions: tuple[str, ...] = ()


def read_plan(path: Path) -> PlanDocument:
    return convert_result(read_json_file(path), PlanDocument, str(path))


def plan_json(plan: Plan) -> dict[str, Any]:
    request = plan.request
    document = PlanDocument(
        target=PlanTarget(peak_requests_per_s=request.peak_rps, average_requests_per_s=request.average_rps,
                          users=request.users, headroom=request.headroom,
                          output_tokens_per_request=plan.output_tokens_per_request,
                          input_tokens_per_request=plan.input_tokens_per_request),
        slo_ms={f"{t.metric}_{t.statistic}": t.threshold_ns / 1e6 for t in request.slo},
        sweeps=request.sweeps,
        measured_capacity=plan.measured,
        calibration=plan.calibration,
        candidates=tuple(plan.candidates),
        assumptions=tuple(plan.assumptions),
    )  # fmt: skip
    return as_json(document)


MARKS = {"estimate": " *", "imported": " †"}


def _range(low: object, high: object) -> str:
    if high is None:
        return f"≥{low}" if low else "–"
    return str(low) if low == high else f"{low}–{high}"


def _capacity_cell(candidate: CandidatePlan, users: bool) -> str:
    if users and candidate.capacity_users is not None:
        return f"{candidate.capacity_users:g}\n[dim]{candidate.capacity_rps:.2f} req/s[/dim]"
    bracket = (f"{candidate.capacity_rps_low:.1f}–{candidate.capacity_rps_high:.1f}"
               if candidate.capacity_rps_high is not None else f"≥{candidate.capacity_rps_low:.1f}")  # fmt: skip
    return f"{candidate.capacity_rps:.2f}\n[dim]{bracket}[/dim]"


def print_plan(console: Console, plan: Plan) -> None:
    request = plan.request
    target = f"{request.peak_rps:g} req/s peak" if request.peak_rps is not None else f"{request.users} users"
    slo = ", ".join(target.describe() for target in request.slo)
    table = Table(title=f"capacity plan: {target}, {slo}", title_justify="left", box=box.SIMPLE_HEAD,
                  collapse_padding=True, padding=(0, 1), pad_edge=False)  # fmt: skip
    per_replica = "users\n/replica" if request.users is not None else "req/s\n/replica"  # what replicas are sized by
    for column in ("hardware", per_replica, "binds", "repl.", "inst.", "$/month", "$/M\nout tok"):
        table.add_column(column, justify="left" if column[0] in "hb" else "right", no_wrap=True)
    for candidate in plan.candidates:
        name = f"{candidate.profile}{MARKS.get(candidate.basis, '')}"
        if not candidate.feasible:
            table.add_row(name, "–", candidate.binding, "cannot", "–", "–", "–", style="dim")
            continue
        table.add_row(
            name,
            _capacity_cell(candidate, request.users is not None),
            candidate.binding.replace("_p", " p").replace("_mean", " mean").replace("max_batch", "batch"),
            _range(candidate.replicas, candidate.replicas_range[1] if candidate.replicas_range else None),
            _range(candidate.instances, candidate.instances_range[1] if candidate.instances_range else None),
            "–" if candidate.cost_per_month is None else f"{candidate.cost_per_month:,.0f}",
            "–"
            if candidate.cost_per_million_output_tokens is None
            else f"{candidate.cost_per_million_output_tokens:.2f}",
            style="bold" if not candidate.estimate else None,
        )
    imported = any(candidate.basis == "imported" for candidate in plan.candidates)
    table.caption = (f"bold: {'imported † (another tool' + chr(39) + 's figures)' if imported else 'measured'} · "
                     "*: roofline estimate scaled from it · second line: bracket from the sweep levels")  # fmt: skip
    console.print(table)
    for candidate in plan.candidates:
        if candidate.feasible and candidate.replica_accelerators > 1:
            console.print(Text(f"{candidate.profile}: each replica spans {candidate.replica_accelerators} accelerators",
                               style="dim"))  # fmt: skip
        for note in candidate.notes:
            if not note.startswith("estimate:"):
                console.print(Text(f"{candidate.profile}: {note}", style="yellow"))
    for assumption in plan.assumptions:
        if assumption.startswith("WARNING: "):
            console.print(Text(assumption, style="bold red"))
        else:
            console.print(Text(f"assumption: {assumption}", style="dim"))
