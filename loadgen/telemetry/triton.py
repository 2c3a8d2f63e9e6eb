"""Telemetry layer: Triton's per-model counters, scraped before and after each level.

Triton's Prometheus endpoint (``:8002/metrics`` by default) keeps cumulative counters per model
and version: successes, failures by reason, executions, inferences and the time requests spent
queued and in compute. The difference over a level gives what the server did for that load: the
average batch it ran (inferences per execution) and where a request's server time went.
"""

from __future__ import annotations

from collections import defaultdict
from urllib.parse import urlsplit

from prometheus_client.parser import text_string_to_metric_families

from loadgen.telemetry.prometheus import fetch_exposition

SCRAPE_TIMEOUT_S = 3.0
COUNTERS = {
    "nv_inference_request_success": "requests_succeeded",
    "nv_inference_request_failure": "requests_failed",
    "nv_inference_count": "inferences",
    "nv_inference_exec_count": "executions",
    "nv_inference_request_duration_us": "request_us",
    "nv_inference_queue_duration_us": "queue_us",
    "nv_inference_compute_input_duration_us": "compute_input_us",
    "nv_inference_compute_infer_duration_us": "compute_infer_us",
    "nv_inference_compute_output_duration_us": "compute_output_us",
}
TIME_SPLIT = ("request", "queue", "compute_input", "compute_infer", "compute_output")

ModelCounters = dict[str, float]  # counter name (and requests_failed:<reason>) → value


def default_metrics_url(endpoint_url: str) -> str:
    """Triton serves metrics on port 8002 of the same host unless told otherwise."""
    parts = urlsplit(endpoint_url if "://" in endpoint_url else f"grpc://{endpoint_url}")
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname
    return f"http://{host}:8002/metrics"


def parse_triton_counters(text: str) -> dict[str, ModelCounters]:
    """Prometheus text → {model: counters}, summed over versions. Raises ValueError."""
    models: dict[str, ModelCounters] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = COUNTERS.get(sample.name) or COUNTERS.get(sample.name.removesuffix("_total"))
            model = sample.labels.get("model")
            if name is None or model is None:
                continue
            counters = models[model]
            counters[name] = counters.get(name, 0.0) + float(sample.value)
            reason = sample.labels.get("reason")
            if name == "requests_failed" and reason:
                key = f"requests_failed:{reason}"
                counters[key] = counters.get(key, 0.0) + float(sample.value)
    return dict(models)


def scrape_triton(url: str) -> dict[str, ModelCounters]:
    """One scrape. Raises OSError (unreachable) or ValueError (not Prometheus text)."""
    return parse_triton_counters(fetch_exposition(url, SCRAPE_TIMEOUT_S))


def level_figures(before: ModelCounters, after: ModelCounters) -> dict[str, object]:
    """What one model's counters say about the level between two scrapes."""

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    succeeded, executions, inferences = delta("requests_succeeded"), delta("executions"), delta("inferences")
    figures: dict[str, object] = {
        "requests_succeeded": round(succeeded),
        "requests_failed": round(delta("requests_failed")),
        "executions": round(executions),
        "inferences": round(inferences),
    }
    failed_by_reason = {
        key.split(":", 1)[1]: round(delta(key)) for key in after if key.startswith("requests_failed:") and delta(key)
    }
    if failed_by_reason:
        figures["failed_by_reason"] = failed_by_reason
    if executions > 0:
        figures["average_batch_size"] = round(inferences / executions, 3)
        figures["requests_per_execution"] = round(succeeded / executions, 3)
    requests = succeeded + delta("requests_failed")
    if requests > 0:
        figures["per_request_ms"] = {part: round(delta(f"{part}_us") / requests / 1000, 3) for part in TIME_SPLIT}
    return figures


def levels_by_model(before: dict[str, ModelCounters], after: dict[str, ModelCounters]) -> dict[str, object]:
    """Per model that did any work during the level (ensembles show their steps too)."""
    result: dict[str, object] = {}
    for model, counters in sorted(after.items()):
        figures = level_figures(before.get(model, {}), counters)
        if figures["requests_succeeded"] or figures["requests_failed"] or figures["executions"]:
            result[model] = figures
    return result
