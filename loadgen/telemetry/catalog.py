"""Telemetry layer: builds the sources a run asked for, and the telemetry block of a summary."""

from __future__ import annotations

from loadgen.config import TelemetryConfig
from loadgen.parsing import url_with_path
from loadgen.telemetry.gpu import NvmlSource
from loadgen.telemetry.host import HostSource, ProcessSource
from loadgen.telemetry.model import Source
from loadgen.telemetry.neuron import NeuronMonitorSource
from loadgen.telemetry.prometheus import PrometheusSource
from loadgen.telemetry.remote import RemoteSource
from loadgen.telemetry.sampler import Sampler


def build_sources(config: TelemetryConfig, endpoint_url: str, client_pid: int | None = None) -> list[Source]:
    """``client_pid``: the load generator's process, when sampling from a sidecar process."""
    sources: list[Source] = []
    if "gpu" in config.sources:
        sources.append(NvmlSource(config.gpu_devices))
    if "neuron" in config.sources:
        sources.append(NeuronMonitorSource(period_s=max(1.0, config.interval_s)))
    if "host" in config.sources:
        sources += [HostSource(), ProcessSource(client_pid)]
    if "server" in config.sources:
        url = config.server_metrics_url or url_with_path(endpoint_url, "/metrics")
        sources.append(PrometheusSource(url, config.server_metric_names))
    if config.remote_url:
        sources.append(RemoteSource(config.remote_url))
    return sources


def remote_info(sources: list[Source]) -> dict[str, object] | None:
    for source in sources:
        if isinstance(source, RemoteSource):
            return {
                "url": source.url,
                "clock_offset_ns": source.offset_ns,
                "clock_uncertainty_ns": source.uncertainty_ns,
                "unavailable": source.remote_unavailable,
            }
    return None


def sampler_info(sampler: Sampler) -> dict[str, object]:
    stats = sampler.stats()
    return {
        "interval_s": stats.interval_s,
        "polls": stats.polls,
        "samples": stats.samples,
        "poll_cpu_s": round(stats.cpu_s, 6),
        "poll_cpu_percent_of_core": stats.cpu_percent_of_core,
        "errors": stats.errors,
        "first_error": dict(sampler.first_error),
        "unavailable": stats.unavailable,
        "remote": remote_info(sampler.sources),
    }
