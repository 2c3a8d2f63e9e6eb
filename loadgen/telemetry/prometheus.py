"""Telemetry layer: a server's Prometheus endpoint (vLLM, TGI, Triton, llama.cpp, the simulator).

Known metric names map to common ones (``requests_running``, ``requests_waiting``,
``kv_cache_usage`` as a fraction, token and speculative-decoding counters, Triton's execution and
queue counters), summed over label sets (models, engines). Counters also give a per-second rate
between scrapes (``<name>_per_s``). Any other metric can be asked for by its own name.
"""

from __future__ import annotations

import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from loadgen.telemetry.model import Sample, SourceUnavailable

KNOWN_METRICS = {
    # vLLM
    "vllm:num_requests_running": "requests_running",
    "vllm:num_requests_waiting": "requests_waiting",
    "vllm:gpu_cache_usage_perc": "kv_cache_usage",
    "vllm:kv_cache_usage_perc": "kv_cache_usage",
    "vllm:generation_tokens_total": "generation_tokens_total",
    "vllm:prompt_tokens_total": "prompt_tokens_total",
    "vllm:spec_decode_num_draft_tokens_total": "spec_draft_tokens_total",
    "vllm:spec_decode_num_accepted_tokens_total": "spec_accepted_tokens_total",
    # Text Generation Inference
    "tgi_batch_current_size": "requests_running",
    "tgi_queue_size": "requests_waiting",
    # llama.cpp server
    "llamacpp:requests_processing": "requests_running",
    "llamacpp:requests_deferred": "requests_waiting",
    "llamacpp:kv_cache_usage_ratio": "kv_cache_usage",
    # llama.cpp adds a request's tokens when it ends: a rate from it is an average, never a peak
    "llamacpp:tokens_predicted_total": "finished_tokens_total",
    "llamacpp:n_busy_slots_per_decode": "busy_slots_per_decode",  # the server's own average batch
    "llamacpp:prompt_tokens_total": "prompt_tokens_total",
    "llamacpp:spec_decode_num_draft_tokens_total": "spec_draft_tokens_total",
    "llamacpp:spec_decode_num_accepted_tokens_total": "spec_accepted_tokens_total",
    # Triton Inference Server
    "nv_inference_pending_request_count": "requests_waiting",
    "nv_inference_request_success": "requests_succeeded_total",
    "nv_inference_request_failure": "requests_failed_total",
    "nv_inference_exec_count": "executions_total",
    "nv_inference_queue_duration_us": "queue_duration_us_total",
    "nv_inference_compute_infer_duration_us": "compute_infer_duration_us_total",
    # vLLM's own latency histograms (sums and counts, for means over a window); 0.32 names first
    **{
        f"{name}_{part}": f"server_{metric}_seconds_{part}"
        for name, metric in (
            ("vllm:time_to_first_token_seconds", "ttft"),
            ("vllm:request_time_per_output_token_seconds", "tpot"),
            ("vllm:inter_token_latency_seconds", "itl"),
            ("vllm:time_per_output_token_seconds", "itl"),
            ("vllm:e2e_request_latency_seconds", "e2e"),
        )
        for part in ("sum", "count")
    },
    # loadgen's simulator: how far its engine steps ran behind their modelled schedule
    "loadgen_sim:modelled_step_seconds_total": "target_modelled_seconds_total",
    "loadgen_sim:late_step_seconds_total": "target_late_seconds_total",
}
SCRAPE_TIMEOUT_S = 2.0


def parse_exposition(text: str, extra_names: tuple[str, ...] = ()) -> dict[str, float]:
    """Prometheus text → {common name: value}, summed over label sets. Raises ValueError."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            # the parser renames a counter's samples to <family>_total (Triton's have no suffix)
            spellings = (sample.name, sample.name.removesuffix("_total"))
            name = next((KNOWN_METRICS[spelling] for spelling in spellings if spelling in KNOWN_METRICS), None)
            if name is None:
                name = next((spelling for spelling in spellings if spelling in extra_names), None)
            if name is None:
                continue
            values[name] = values.get(name, 0.0) + float(sample.value)
    return values


def fetch_exposition(url: str, timeout_s: float = SCRAPE_TIMEOUT_S) -> str:
    """A metrics endpoint's text. Raises OSError naming the URL when it cannot be read."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return str(response.read().decode("utf-8", "replace"))
    except (urllib.error.URLError, OSError) as exc:
        raise OSError(f"cannot scrape {url}: {getattr(exc, 'reason', exc)}") from None


def scrape_counters(url: str) -> dict[str, float]:
    """One scrape of the known metrics. Raises OSError (unreachable) or ValueError (not Prometheus)."""
    return parse_exposition(fetch_exposition(url))


def acceptance_rate(before: dict[str, float], after: dict[str, float]) -> float | None:
    """Accepted ÷ proposed draft tokens between two scrapes (speculative decoding), if any were proposed."""
    drafted = after.get("spec_draft_tokens_total", 0.0) - before.get("spec_draft_tokens_total", 0.0)
    accepted = after.get("spec_accepted_tokens_total", 0.0) - before.get("spec_accepted_tokens_total", 0.0)
    return round(accepted / drafted, 4) if drafted > 0 else None


class PrometheusSource:
    name = "server"

    def __init__(self, url: str, extra_names: tuple[str, ...] = ()) -> None:
        self.url = url
        self._extra = extra_names
        self._last: tuple[int, dict[str, float]] | None = None

    def _scrape(self) -> str:
        try:
            return fetch_exposition(self.url)
        except OSError as exc:
            raise SourceUnavailable(str(exc)) from None

    def open(self) -> None:
        try:
            values = parse_exposition(self._scrape(), self._extra)
        except ValueError as exc:  # an HTML page, JSON, a login form: not this source, not the run's end
            raise SourceUnavailable(f"{self.url} is not Prometheus text ({' '.join(str(exc).split())[:120]})") from None
        if not values:
            raise SourceUnavailable(f"{self.url} exposes none of the known server metrics")

    def read(self, t_ns: int) -> list[Sample]:
        values = parse_exposition(self._scrape(), self._extra)
        rates: dict[str, float] = {}
        if self._last is not None:
            last_t, last_values = self._last
            seconds = (t_ns - last_t) / 1e9
            for name, value in values.items():
                if name.endswith("_total") and name in last_values and seconds > 0:
                    rates[name.removesuffix("_total") + "_per_s"] = (value - last_values[name]) / seconds
        self._last = (t_ns, values)
        return [Sample(t_ns, self.name, "", {**values, **rates})]

    def close(self) -> None:
        return None
