"""Telemetry layer: one level's samples reduced to the figures users compare across levels.

Energy comes from the GPU's total-energy counter (the difference between the first and last
sample in the window) when the GPU has one, else from integrating power over time (trapezoids);
the summary says which. Per output token figures use the level's output token count.
"""

from __future__ import annotations

import itertools
from collections import defaultdict

from loadgen.metrics.results import (
    GpuFigures,
    HostFigures,
    MeanMax,
    NeuronFigures,
    OwnLatency,
    ProcessFigures,
    ServerFigures,
    Telemetry,
)
from loadgen.telemetry.model import Sample
from loadgen.telemetry.prometheus import acceptance_rate


def _series(samples: list[Sample], source: str) -> dict[str, list[Sample]]:
    by_device: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        if sample.source == source:
            by_device[sample.device].append(sample)
    return by_device


def _stats(samples: list[Sample], key: str, scale: float = 1.0) -> MeanMax | None:
    values = [sample.values[key] * scale for sample in samples if key in sample.values]
    if not values:
        return None
    return MeanMax(mean=round(sum(values) / len(values), 3), max=round(max(values), 3))


def _energy_j(samples: list[Sample], window_s: float | None = None) -> tuple[float, str] | None:
    """Joules between the first and last samples; with ``window_s``, the mean power over them
    times the whole window (samples fall inside it, so their span is a little shorter)."""
    counter = [(s.t_ns, s.values["energy_j"]) for s in samples if "energy_j" in s.values]
    power = [(s.t_ns, s.values["power_w"]) for s in samples if "power_w" in s.values]
    if len(counter) >= 2:
        points, joules, method = counter, counter[-1][1] - counter[0][1], "energy_counter"
    elif len(power) >= 2:
        points, method = power, "power_integral"
        joules = sum((t1 - t0) / 1e9 * (p0 + p1) / 2 for (t0, p0), (t1, p1) in itertools.pairwise(power))
    else:
        return None
    span_s = (points[-1][0] - points[0][0]) / 1e9
    if window_s is not None and span_s > 0:
        joules *= window_s / span_s
    return joules, method


def _counter_rate(samples: list[Sample], key: str) -> float | None:
    points = [(s.t_ns, s.values[key]) for s in samples if key in s.values]
    if len(points) < 2 or points[-1][0] <= points[0][0]:
        return None
    return round((points[-1][1] - points[0][1]) / ((points[-1][0] - points[0][0]) / 1e9), 3)


def summarize_window(samples: list[Sample], output_tokens: int, window_s: float | None = None) -> Telemetry:
    gpus: dict[str, GpuFigures] = {}
    total_energy = 0.0
    energy_methods = set()
    for device, series in sorted(_series(samples, "gpu").items()):
        energy = _energy_j(series, window_s)
        gpus[device] = GpuFigures(
            util_percent=_stats(series, "gpu_util_percent"),
            mem_util_percent=_stats(series, "mem_util_percent"),
            memory_used_gib=_stats(series, "memory_used_bytes", 1 / 2**30),
            power_w=_stats(series, "power_w"),
            sm_clock_mhz=_stats(series, "sm_clock_mhz"),
            temperature_c=_stats(series, "temperature_c"),
            throttled_samples=sum(1 for s in series if s.values.get("throttle_reasons", 0) not in (0, 1)),
            pcie_tx_bytes_per_s=_stats(series, "pcie_tx_bytes_per_s"),
            pcie_rx_bytes_per_s=_stats(series, "pcie_rx_bytes_per_s"),
            nvlink_tx_bytes_per_s=_counter_rate(series, "nvlink_tx_bytes_total"),
            nvlink_rx_bytes_per_s=_counter_rate(series, "nvlink_rx_bytes_total"),
            energy_j=round(energy[0], 3) if energy is not None else None,
        )
        if energy is not None:
            total_energy += energy[0]
            energy_methods.add(energy[1])
    measured_energy = bool(gpus and energy_methods)
    cores = _series(samples, "neuron")
    host, process = _series(samples, "host").get(""), _series(samples, "process").get("")
    server = _series(samples, "server").get("")
    return Telemetry(
        samples=len(samples),
        gpu=gpus or None,
        energy_j=round(total_energy, 3) if measured_energy else None,
        energy_method="+".join(sorted(energy_methods)) if measured_energy else None,
        joules_per_output_token=round(total_energy / output_tokens, 6) if measured_energy and output_tokens else None,
        output_tokens_per_joule=round(output_tokens / total_energy, 6)
        if measured_energy and total_energy > 0
        else None,
        neuron={
            device: NeuronFigures(
                core_util_percent=_stats(series, "core_util_percent"),
                device_memory_used_gib=_stats(series, "device_memory_used_bytes", 1 / 2**30),
                execution_latency_p99_ms=_stats(series, "execution_latency_p99_ms"),
            )
            for device, series in sorted(cores.items())
        }
        or None,
        host=HostFigures(cpu_percent=_stats(host, "cpu_percent"), memory_used_bytes=_stats(host, "memory_used_bytes"))
        if host
        else None,
        process=ProcessFigures(cpu_percent=_stats(process, "cpu_percent"), rss_bytes=_stats(process, "rss_bytes"))
        if process
        else None,
        server=_server_summary(server) if server else None,
    )


def _server_summary(series: list[Sample]) -> ServerFigures:
    first, last = series[0].values, series[-1].values
    seconds = (series[-1].t_ns - series[0].t_ns) / 1e9
    finished = last.get("finished_tokens_total", 0.0) - first.get("finished_tokens_total", 0.0)
    latency = {}
    for metric in ("ttft", "tpot", "itl", "e2e"):
        count = last.get(f"server_{metric}_seconds_count", 0.0) - first.get(f"server_{metric}_seconds_count", 0.0)
        total = last.get(f"server_{metric}_seconds_sum", 0.0) - first.get(f"server_{metric}_seconds_sum", 0.0)
        if count > 0:
            latency[metric] = OwnLatency(mean=round(1000 * total / count, 4), count=int(count))
    executions = last.get("executions_total", 0.0) - first.get("executions_total", 0.0)
    succeeded = last.get("requests_succeeded_total", 0.0) - first.get("requests_succeeded_total", 0.0)
    return ServerFigures(
        requests_running=_stats(series, "requests_running"),
        requests_waiting=_stats(series, "requests_waiting"),
        kv_cache_usage_percent=_stats(series, "kv_cache_usage", 100.0),
        generation_tokens_per_s=_stats(series, "generation_tokens_per_s"),
        spec_acceptance_rate=acceptance_rate(first, last),
        batch_per_decode=_stats(series, "busy_slots_per_decode"),  # llama.cpp's own average batch
        # an average: counted at each end
        finished_tokens_per_s_mean=round(finished / seconds, 3)
        if "finished_tokens_total" in last and seconds > 0
        else None,
        own_latency_ms=latency or None,  # the server's own histograms, over the same window
        average_batch_size=round(succeeded / executions, 3) if executions > 0 else None,
    )
