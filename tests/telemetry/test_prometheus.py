import msgspec
import pytest

from loadgen.telemetry.model import SourceUnavailable
from loadgen.telemetry.prometheus import PrometheusSource, parse_exposition
from tests.conftest import SimFactory, free_port

VLLM = """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 12.0
vllm:num_requests_running{engine="1",model_name="m"} 4.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 3.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.42
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{model_name="m"} 1000.0
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{le="0.3",model_name="m"} 1.0
vllm:e2e_request_latency_seconds_count{model_name="m"} 3.0
"""
TRITON = """# TYPE nv_inference_request_success counter
nv_inference_request_success{model="ensemble",version="1"} 200
nv_inference_request_success{model="tensorrt_llm",version="1"} 200
# TYPE nv_inference_exec_count counter
nv_inference_exec_count{model="tensorrt_llm",version="1"} 50
# TYPE nv_inference_pending_request_count gauge
nv_inference_pending_request_count{model="tensorrt_llm",version="1"} 7
"""
TGI_LLAMACPP = """# TYPE tgi_queue_size gauge
tgi_queue_size 5
# TYPE llamacpp:kv_cache_usage_ratio gauge
llamacpp:kv_cache_usage_ratio 0.25
# TYPE custom_metric gauge
custom_metric{a="b"} 9
"""


def test_known_names_are_mapped_and_summed_over_labels() -> None:
    assert parse_exposition(VLLM) == {
        "requests_running": 16.0, "requests_waiting": 3.0, "kv_cache_usage": 0.42, "generation_tokens_total": 1000.0,
        "server_e2e_seconds_count": 3.0,  # vLLM's own histogram, for its mean over a window
    }  # fmt: skip
    assert parse_exposition(TRITON) == {
        "requests_succeeded_total": 400.0, "executions_total": 50.0, "requests_waiting": 7.0,
    }  # fmt: skip


def test_other_servers_and_names_asked_for() -> None:
    assert parse_exposition(TGI_LLAMACPP, extra_names=("custom_metric",)) == {
        "requests_waiting": 5.0, "kv_cache_usage": 0.25, "custom_metric": 9.0,
    }  # fmt: skip


def test_malformed_exposition_raises() -> None:
    with pytest.raises(ValueError):
        parse_exposition("metric{unclosed 1\n")


def test_scrape_of_the_simulator_with_counter_rates(start_sim: SimFactory) -> None:
    sim = start_sim("llama2-7b-h100")
    source = PrometheusSource(sim.url + "/metrics")
    source.open()
    first = source.read(1_000_000_000)[0].values
    assert first["requests_running"] == 0 and "kv_cache_usage" in first
    second = source.read(2_000_000_000)[0].values
    assert second["generation_tokens_per_s"] == 0.0  # idle server: a rate of zero, measured


def test_unreachable_or_unknown_endpoints_are_unavailable(start_sim: SimFactory) -> None:
    with pytest.raises(SourceUnavailable, match="cannot scrape"):
        PrometheusSource(f"http://127.0.0.1:{free_port()}/metrics").open()
    sim = start_sim("fixed:1,1")  # serves /metrics without engine metrics
    with pytest.raises(SourceUnavailable, match="none of the known server metrics"):
        PrometheusSource(sim.url + "/metrics").open()


def test_llama_cpp_draft_acceptance_counters() -> None:
    from loadgen.telemetry.prometheus import acceptance_rate

    def scrape(drafted: int, accepted: int) -> dict[str, float]:
        return parse_exposition(
            f"# TYPE llamacpp:spec_decode_num_draft_tokens_total counter\n"
            f"llamacpp:spec_decode_num_draft_tokens_total {drafted}\n"
            f"# TYPE llamacpp:spec_decode_num_accepted_tokens_total counter\n"
            f"llamacpp:spec_decode_num_accepted_tokens_total {accepted}\n"
        )

    assert acceptance_rate(scrape(100, 40), scrape(300, 160)) == 0.6  # 120 of 200 drafted tokens accepted


def test_the_servers_own_latency_means_and_llama_cpp_batch() -> None:
    from loadgen.telemetry.model import Sample
    from loadgen.telemetry.summary import summarize_window

    def scrape(t_s: float, ttft_sum: float, count: float, itl_name: str) -> Sample:
        values = parse_exposition(
            "# TYPE vllm:time_to_first_token_seconds histogram\n"
            f"vllm:time_to_first_token_seconds_sum {ttft_sum}\nvllm:time_to_first_token_seconds_count {count}\n"
            f"# TYPE {itl_name} histogram\n{itl_name}_sum {count * 0.005}\n{itl_name}_count {count}\n"
            "# TYPE llamacpp:n_busy_slots_per_decode gauge\nllamacpp:n_busy_slots_per_decode 3.5\n"
        )
        return Sample(round(t_s * 1e9), "server", "", values)

    for itl_name in ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"):  # 0.32, and older
        server = summarize_window([scrape(0, 1.0, 10, itl_name), scrape(2, 1.5, 20, itl_name)], 100).server
        assert server is not None and server.own_latency_ms is not None and server.batch_per_decode is not None
        assert msgspec.to_builtins(server.own_latency_ms["ttft"]) == {"mean": 50.0, "count": 10}  # 0.5 s over 10
        assert server.own_latency_ms["itl"].mean == 5.0
        assert server.batch_per_decode.mean == 3.5


def test_a_page_that_is_not_prometheus_text_makes_the_source_unavailable_not_the_run() -> None:
    from aiohttp import web

    from loadgen.telemetry.model import SourceUnavailable
    from loadgen.telemetry.prometheus import PrometheusSource
    from tests.threaded_server import serve_in_thread

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "m"}]})

    app = web.Application()
    app.router.add_get("/metrics", models)
    with serve_in_thread(app) as url, pytest.raises(SourceUnavailable, match="is not Prometheus text"):
        PrometheusSource(url + "/metrics").open()
