"""Report layer, HTML: a capacity plan (``plan.json``): the hardware options ranked, their costs."""

from __future__ import annotations

from html import escape

from loadgen.plan.planner import CandidatePlan
from loadgen.report.html.blocks import html_cell, html_table, range_text
from loadgen.report.plan import PlanDocument
from loadgen.report.plots import Chart


def plan_section(plan: PlanDocument, prefix: str) -> str:
    """``plan.json`` from ``loadgen plan --output``: the hardware options ranked."""
    target, measured = plan.target, plan.measured_capacity
    slo = ", ".join(f"{k.replace('_', ' ', 1)} ≤ {v:g} ms" for k, v in plan.slo_ms.items())
    capacity = (f"{html_cell(measured.requests_per_s)} req/s ({html_cell(measured.requests_per_s_low)}–"
                f"{html_cell(measured.requests_per_s_high)})" if measured else "–")  # fmt: skip
    demand = f"{target.users} users" if target.users else f"{html_cell(target.peak_requests_per_s)} req/s peak"
    headroom = target.headroom
    html = (f"<p>target: {escape(demand)}, headroom {headroom:.0%}; SLOs: {escape(slo)}; measured capacity per "
            f"replica: {capacity}, bound by {escape(_binding_text(measured.binding if measured else None))}</p>"
            if headroom is not None else f"<p>SLOs: {escape(slo)}</p>")  # fmt: skip
    rows: list[list[object]] = [
        [c.profile, c.basis or ("estimate" if c.estimate else "measured"), "yes" if c.feasible else "cannot",
         _binding_text(c.binding), _capacity_text(c, plan.target.users is not None),
         range_text(c.replicas, c.replicas_range[1] if c.replicas_range else None),
         range_text(c.instances, c.instances_range[1] if c.instances_range else None),
         _price_text(c),
         "–" if c.cost_per_month is None else f"${c.cost_per_month:,.0f}",
         "–" if c.cost_per_million_output_tokens is None else f"${c.cost_per_million_output_tokens:.2f}"]
        for c in plan.candidates
    ]  # fmt: skip
    per_replica = "users per replica" if plan.target.users is not None else "req/s per replica (bracket)"
    headers = ["hardware", "basis", "feasible", "binding constraint", per_replica, "replicas",
               "instances", "price per hour", "cost per month", "cost per M output tokens"]  # fmt: skip
    costs = [(c, c.cost_per_month) for c in plan.candidates if c.cost_per_month is not None]
    chart = Chart(f"{prefix}-plan-cost", "cost per month of each feasible option", "", "$ per month")
    chart.bars("cost", [f"{c.profile}{' *' if c.estimate else ''}" for c, _ in costs], [cost for _, cost in costs],
               unit="$")  # fmt: skip
    notes = "".join(f'<li class="warn">{escape(a)}</li>' if a.startswith("WARNING: ") else f"<li>{escape(a)}</li>"
                    for a in plan.assumptions)  # fmt: skip
    return (html + html_table(headers, rows, f"{prefix}-plan", text_columns=4)
            + f'<div class="charts">{chart.html()}</div>' + (f"<ul>{notes}</ul>" if notes else ""))  # fmt: skip


def _price_text(candidate: CandidatePlan) -> str:
    """An instance's hourly price and its kind: an owned machine's cost is not a cloud price."""
    if candidate.price_per_hour is None:
        return "–"
    kind = (candidate.price_kind or "").replace("_", "-")
    return f"${candidate.price_per_hour:,.2f} {kind}".strip()


def _binding_text(binding: str | None) -> str:
    return (binding or "–").replace("_p", " p").replace("_mean", " mean").replace("max_batch", "engine max batch")


def _capacity_text(candidate: CandidatePlan, users: bool) -> str:
    if not candidate.feasible:
        return "–"
    if users and candidate.capacity_users is not None:
        return f"{candidate.capacity_users:g} users ({candidate.capacity_rps:.2f} req/s)"
    low, high = candidate.capacity_rps_low, candidate.capacity_rps_high
    bracket = f" ({low:.2f}–{high:.2f})" if high is not None else f" (≥ {low:.2f})"
    return f"{candidate.capacity_rps:.2f} req/s{bracket}"
