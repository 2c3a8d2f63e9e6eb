"""Planning layer: replicas, instances and cost for a target load, measured and what-if.

- The measured setup's per-replica capacity comes from its sweeps (``capacity``), rescaled when the
  target's output length differs from the sweep's (decode throughput in tokens/s is assumed to
  hold: requests/s scale with measured ÷ target output tokens).
- Other hardware: the roofline model's capacity on that hardware, times the calibration factor
  measured ÷ modelled on the measured hardware (the same model the simulator runs). Each such
  figure is marked an estimate. A replica there spans the power-of-two number of accelerators
  (tensor parallel; communication not modelled) that carries the most requests/s per instance.
- Replicas = ⌈peak × (1 + headroom) ÷ capacity⌉; the bracket of the capacity gives the bracket of
  the replica count. Instances hold ⌊accelerators ÷ accelerators per replica⌋ replicas each.
- Cost per million output tokens is at the *average* rate on the fleet sized for the peak.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from loadgen.config import SloTarget
from loadgen.errors import ConfigError
from loadgen.hardware.profiles import HardwareProfile, ModelProfile, ProfileSet
from loadgen.metrics.results import ImportedSource
from loadgen.plan.capacity import Capacity, load_sweep, replica_capacity, sweep_source
from loadgen.plan.model import ModelCapacity, modelled_capacity

HOURS_PER_MONTH = 730.0
# the roofline model's error against the simulator sweeping the hardware itself (tests/plan/test_fidelity.py
# measures +7.8 %); a real server may differ more
ESTIMATE_UNCERTAINTY = 0.15
WEIGHT_MEMORY_SHARE = 0.8  # weights may fill this share of a replica's memory; the rest is for the KV cache


@dataclass(frozen=True, slots=True)
class PlanRequest:
    sweeps: tuple[str, ...]
    slo: tuple[SloTarget, ...]
    peak_rps: float | None = None
    average_rps: float | None = None
    users: int | None = None
    headroom: float = 0.2
    input_tokens: float | None = None
    output_tokens: float | None = None
    measured_on: str | None = None
    replica_accelerators: int = 1
    model: str | None = None
    price_kind: str = "on_demand"
    max_batch: int = 256


@dataclass(frozen=True, slots=True)
class CandidatePlan:
    profile: str
    description: str
    estimate: bool
    feasible: bool
    binding: str
    replica_accelerators: int
    capacity_rps: float
    capacity_rps_low: float
    capacity_rps_high: float | None
    capacity_users: float | None = None  # closed-loop sweeps: the users one replica holds within the SLOs
    replicas: int | None = None
    replicas_range: tuple[int, int | None] | None = None
    instances: int | None = None
    instances_range: tuple[int, int | None] | None = None
    price_per_hour: float | None = None
    price_kind: str | None = None
    cost_per_hour: float | None = None
    cost_per_month: float | None = None
    cost_per_million_output_tokens: float | None = None
    joules_per_output_token: float | None = None
    notes: list[str] = field(default_factory=list)
    basis: str = "measured"  # "measured" (loadgen's own sweep), "imported" (another tool's figures) or "estimate"


@dataclass(frozen=True, slots=True)
class Plan:
    request: PlanRequest
    measured: Capacity
    output_tokens_per_request: float
    input_tokens_per_request: float | None
    calibration: float | None
    candidates: list[CandidatePlan]
    assumptions: list[str]


def make_plan(request: PlanRequest, profiles: ProfileSet) -> Plan:
    if (request.peak_rps is None) == (request.users is None):
        raise ConfigError("give the target as --target-rate (requests/s) or --target-users, one of the two")
    measured = _measured_capacity(request)
    output_tokens = request.output_tokens or measured.output_tokens_per_request
    # what a replica prefills: the measured prompt less what the server's prefix cache served
    input_tokens = request.input_tokens or measured.uncached_input_tokens_per_request or 0.0
    length_scale = measured.output_tokens_per_request / output_tokens
    unknown_input = not request.input_tokens and not measured.input_tokens_per_request
    assumptions = [
        "capacity is read off the measured sweep: interpolated between the last level within the SLOs and the first "
        "outside them, which bracket it",
        f"headroom {request.headroom:.0%} above the peak; cost per million output tokens at the average rate",
    ]
    cached = measured.cached_input_tokens_per_request
    if not request.input_tokens and cached and measured.input_tokens_per_request:
        prompt = measured.input_tokens_per_request
        assumptions.append(f"input tokens per request: {input_tokens:.0f} prefilled of {prompt:.0f} measured; the "
                           f"server's prefix cache served {cached:.0f} (usage): the what-if models the prefilled "
                           "ones")  # fmt: skip
    if abs(length_scale - 1) > 0.01:
        assumptions.append(
            f"target output length {output_tokens:g} tokens vs {measured.output_tokens_per_request:.0f} "
            f"measured: requests/s scaled by {length_scale:.3f} (decode tokens/s assumed to hold)"
        )
    invalid = invalid_levels(request)
    if invalid:
        warning = (f"WARNING: invalid levels in the sweep: {', '.join(invalid)}: their figures are not the setup's "
                   "(see each level's validity); the capacity read off them may be wrong")  # fmt: skip
        assumptions.insert(0, warning)
    sources = {directory: source for directory in request.sweeps if (source := sweep_source(directory))}
    for directory, source in sources.items():
        assumptions.append(_imported_assumption(directory, source))
    hardware = profiles.hardware.get(request.measured_on) if request.measured_on else None
    if request.measured_on and hardware is None:
        raise ConfigError(
            f"--measured-on {request.measured_on}: no such hardware profile ({', '.join(profiles.hardware)})"
        )
    model = _model(request, profiles)
    candidates = []
    measured_plan = _measured_plan(request, measured, length_scale, hardware, output_tokens)
    if sources:
        tools = ", ".join(sorted({source.tool for source in sources.values()}))
        description = f"{measured_plan.description}, figures imported from {tools}"
        measured_plan = dataclasses.replace(measured_plan, basis="imported", description=description)
    candidates.append(measured_plan)
    calibration = None
    if model is not None and hardware is not None:
        reference = modelled_capacity(
            model.spec(),
            hardware.spec(request.replica_accelerators),
            request.slo,
            input_tokens,
            output_tokens,
            request.max_batch,
        )
        if reference.requests_per_s > 0 and measured.requests_per_s > 0:
            calibration = measured.requests_per_s * length_scale / reference.requests_per_s
        assumptions.append(
            "other hardware: the roofline model (the simulator's) scaled by measured ÷ modelled on the measured "
            f"hardware = {calibration:.3f}; its bracket is the sweep's widened by ±{ESTIMATE_UNCERTAINTY:.0%}, "
            "the model's own error"
            if calibration
            else "other hardware: the roofline model, uncalibrated (the measured setup never met the SLOs)"
        )
        if unknown_input:
            assumptions.append("input tokens per request unknown (the sweep does not say): the roofline what-if "
                               "models no prompt tokens; give --input-tokens")  # fmt: skip
        for profile in profiles.hardware.values():
            if profile.name != hardware.name:
                candidates.append(
                    _what_if(request, profile, model, calibration, measured, length_scale, input_tokens, output_tokens)
                )
    elif profiles.hardware and (model is None or hardware is None):
        assumptions.append("no what-if for other hardware: give --measured-on PROFILE and --model NAME")
    ranked = sorted(candidates, key=lambda c: (not c.feasible, c.cost_per_month is None, c.cost_per_month or 0.0))
    assumptions += _price_kinds(ranked)
    return Plan(request, measured, output_tokens, input_tokens or None, calibration, ranked, assumptions)


def _imported_assumption(directory: str, source: ImportedSource) -> str:
    mapped = "; ".join(f"{name} = {text}" for name, text in source.definitions.items())
    lacks = ", ".join(source.lacks) or "nothing"
    derived = "; ".join(source.derived)
    return (f"{directory} was imported from {source.tool} ({', '.join(source.files)}): "
            f"its figures are that tool's ({mapped}); it lacks {lacks}"
            + (f"; derived, not read: {derived}" if derived else ""))  # fmt: skip


def invalid_levels(request: PlanRequest) -> list[str]:
    """'results/x c=64 (target_lagging)' for every swept level whose verdict is not valid."""
    found = []
    for directory in request.sweeps:
        mode, levels = load_sweep(directory)
        unit = "c" if mode == "closed" else "r"
        found += [f"{directory} {unit}={level.load:g} ({level.verdict})" for level in levels
                  if level.verdict not in (None, "valid")]  # fmt: skip
    return found


def _measured_capacity(request: PlanRequest) -> Capacity:
    capacities = []
    for directory in request.sweeps:
        mode, levels = load_sweep(directory)
        if request.users is not None and mode != "closed":
            raise ConfigError(f"--sweep {directory}: --target-users needs a closed-loop (--concurrency) sweep")
        capacities.append(replica_capacity(levels, request.slo, mode == "closed"))
    if len(capacities) == 1:
        return capacities[0]
    first = capacities[0]
    highs = [c.requests_per_s_high for c in capacities]
    users = [c.users for c in capacities if c.users is not None]
    return Capacity(
        requests_per_s=sum(c.requests_per_s for c in capacities) / len(capacities),
        requests_per_s_low=min(c.requests_per_s_low for c in capacities),
        requests_per_s_high=None if None in highs else max(h for h in highs if h is not None),
        users=sum(users) / len(users) if users else None,
        binding=first.binding if all(c.binding == first.binding for c in capacities) else "mixed",
        kind=first.kind if all(c.kind == first.kind for c in capacities) else "mixed",
        output_tokens_per_request=sum(c.output_tokens_per_request for c in capacities) / len(capacities),
        input_tokens_per_request=first.input_tokens_per_request,
        joules_per_output_token=first.joules_per_output_token,
        cached_input_tokens_per_request=first.cached_input_tokens_per_request,
    )


def _model(request: PlanRequest, profiles: ProfileSet) -> ModelProfile | None:
    if request.model is None:
        return None
    model = profiles.models.get(request.model)
    if model is None:
        raise ConfigError(f"--model {request.model}: no such model profile ({', '.join(profiles.models)})")
    return model


def _sizing(
    request: PlanRequest, rps: float, low: float, high: float | None, users: float | None, replicas_per_instance: int
) -> tuple[int, tuple[int, int | None], int, tuple[int, int | None]]:
    demand = (request.users if request.users is not None else request.peak_rps) or 0.0
    per_replica = users if request.users is not None and users else rps
    scale = per_replica / rps if rps else 1.0
    needed = demand * (1 + request.headroom)
    replicas = math.ceil(needed / per_replica)
    most = math.ceil(needed / (low * scale)) if low > 0 else None
    fewest = math.ceil(needed / (high * scale)) if high else replicas
    instances = math.ceil(replicas / replicas_per_instance)

    def to_instances(count: int | None) -> int | None:
        return None if count is None else math.ceil(count / replicas_per_instance)

    return replicas, (fewest, most), instances, (to_instances(fewest) or 0, to_instances(most))


PRICE_KIND_TEXTS = {"on_demand": "on-demand cloud prices", "spot": "spot prices", "reserved": "reserved prices",
                    "owned": "owned hardware (purchase spread over its life, plus power)"}  # fmt: skip


def _price_kinds(candidates: list[CandidatePlan]) -> list[str]:
    """What the costs are prices of; a warning when they are of different kinds (not like for like)."""
    kinds: dict[str, list[str]] = {}
    for candidate in candidates:
        if candidate.price_kind is not None:
            kinds.setdefault(candidate.price_kind, []).append(candidate.profile)
    if len(kinds) <= 1:
        return [f"costs are {PRICE_KIND_TEXTS.get(kind, kind)}" for kind in kinds]
    each = "; ".join(f"{PRICE_KIND_TEXTS.get(kind, kind)}: {', '.join(names)}" for kind, names in kinds.items())
    return [
        f"WARNING: the costs mix kinds of price, so they are not like for like ({each}); compare within a kind "
        "(--price names the kind wanted)"
    ]


def _costs(request: PlanRequest, plan: dict[str, Any], profile: HardwareProfile | None, output_tokens: float) -> None:
    if profile is None:
        plan["notes"].append("no --measured-on profile: no instance count or cost")
        return
    price = profile.price(request.price_kind)
    if price is None:
        return
    plan["price_per_hour"], plan["price_kind"] = price
    if price[1] != request.price_kind:
        plan["notes"].append(f"no {request.price_kind} price: {price[1]} used")
    cost_per_hour = plan["instances"] * price[0]
    plan["cost_per_hour"] = round(cost_per_hour, 4)
    plan["cost_per_month"] = round(cost_per_hour * HOURS_PER_MONTH)
    average = request.average_rps or request.peak_rps
    if average:
        tokens_per_hour = average * output_tokens * 3600
        plan["cost_per_million_output_tokens"] = round(cost_per_hour / tokens_per_hour * 1e6, 4)


def _measured_plan(
    request: PlanRequest,
    measured: Capacity,
    length_scale: float,
    hardware: HardwareProfile | None,
    output_tokens: float,
) -> CandidatePlan:
    rps, low = measured.requests_per_s * length_scale, measured.requests_per_s_low * length_scale
    high = measured.requests_per_s_high * length_scale if measured.requests_per_s_high else None
    name = hardware.name if hardware else "measured setup"
    base: dict[str, Any] = {
        "profile": name,
        "description": hardware.description if hardware else "the swept endpoint",
        "estimate": False,
        "binding": measured.binding,
        "replica_accelerators": request.replica_accelerators,
        "capacity_rps": round(rps, 4),
        "capacity_rps_low": round(low, 4),
        "capacity_rps_high": round(high, 4) if high else None,
        "notes": [],
        "joules_per_output_token": measured.joules_per_output_token,
    }
    if measured.kind == "infeasible":
        base["notes"].append(f"the first level already broke {measured.binding}: the SLO cannot be met on this setup")
        return CandidatePlan(feasible=False, **base)
    if measured.kind == "lower_bound":
        base["notes"].append("the sweep never broke the SLOs: capacity is a lower bound, extend the sweep")
    per_instance = hardware.accelerators // request.replica_accelerators if hardware else 1
    if hardware and per_instance < 1:
        raise ConfigError(
            f"--replica-accelerators {request.replica_accelerators}: {hardware.name} has {hardware.accelerators}"
        )
    replicas, replica_range, instances, instance_range = _sizing(request, rps, low, high, measured.users, per_instance)
    base.update(replicas=replicas, replicas_range=replica_range, instances=instances, instances_range=instance_range,
                capacity_users=round(measured.users, 2) if measured.users else None)  # fmt: skip
    _costs(request, base, hardware, output_tokens)
    return CandidatePlan(feasible=True, **base)


def replica_size(profile: HardwareProfile, model: ModelProfile) -> int | None:
    """Fewest accelerators (a power of two within the instance) whose memory holds the weights."""
    count = 1
    while count <= profile.accelerators:
        if model.spec().weight_bytes <= WEIGHT_MEMORY_SHARE * count * profile.memory_gb * 1e9:
            return count
        count *= 2
    return None


def _cheapest_replica(
    request: PlanRequest,
    profile: HardwareProfile,
    model: ModelProfile,
    smallest: int,
    input_tokens: float,
    output_tokens: float,
) -> tuple[int, ModelCapacity]:
    """Of the power-of-two replica sizes from ``smallest`` to the whole instance, the one that carries
    the most requests/s per instance (so the fewest instances): tensor parallelism buys latency."""
    best: tuple[float, int, ModelCapacity] | None = None
    size = smallest
    while size <= profile.accelerators:
        modelled = modelled_capacity(
            model.spec(), profile.spec(size), request.slo, input_tokens, output_tokens, request.max_batch
        )
        per_instance = modelled.requests_per_s * (profile.accelerators // size)
        if best is None or per_instance > best[0]:
            best = (per_instance, size, modelled)
        size *= 2
    assert best is not None
    return best[1], best[2]


def _what_if(
    request: PlanRequest,
    profile: HardwareProfile,
    model: ModelProfile,
    calibration: float | None,
    measured: Capacity,
    length_scale: float,
    input_tokens: float,
    output_tokens: float,
) -> CandidatePlan:
    size = replica_size(profile, model)
    base: dict[str, Any] = {
        "profile": profile.name,
        "description": profile.description,
        "estimate": True,
        "basis": "estimate",
        "notes": [],
    }
    if size is None:
        return CandidatePlan(
            feasible=False,
            binding="memory",
            replica_accelerators=profile.accelerators,
            capacity_rps=0.0,
            capacity_rps_low=0.0,
            capacity_rps_high=0.0,
            **{
                **base,
                "notes": [f"{model.name} weights do not fit in {profile.accelerators}× {profile.memory_gb:g} GB"],
            },
        )
    size, modelled = _cheapest_replica(request, profile, model, size, input_tokens, output_tokens)
    factor = calibration or 1.0
    rps = modelled.requests_per_s * factor
    ratio = rps / (measured.requests_per_s * length_scale) if measured.requests_per_s else 1.0
    # the sweep's bracket, widened by the model's own error: an estimate is never more certain than that
    low = measured.requests_per_s_low * length_scale * ratio * (1 - ESTIMATE_UNCERTAINTY)
    high = (measured.requests_per_s_high * length_scale * ratio * (1 + ESTIMATE_UNCERTAINTY)
            if measured.requests_per_s_high else None)  # fmt: skip
    base.update(
        binding=modelled.binding,
        replica_accelerators=size,
        capacity_rps=round(rps, 4),
        capacity_rps_low=round(low, 4),
        capacity_rps_high=round(high, 4) if high else None,
    )
    if rps <= 0:
        base["notes"].append(f"{modelled.binding} SLO not met even by one sequence on this hardware")
        return CandidatePlan(feasible=False, **base)
    users = measured.users * ratio if measured.users else None
    replicas, replica_range, instances, instance_range = _sizing(
        request, rps, low, high, users, profile.accelerators // size
    )
    base.update(replicas=replicas, replicas_range=replica_range, instances=instances, instances_range=instance_range,
                capacity_users=round(users, 2) if users else None)  # fmt: skip
    base["notes"].append(f"estimate: roofline at batch {modelled.batch}, step {modelled.step_time_s * 1000:.1f} ms")
    _costs(request, base, profile, output_tokens)
    return CandidatePlan(feasible=True, **base)
