"""Locust mode: LLM users for Locust, reusing loadgen's codecs, prompt sets and HDR metrics.

``loadgen locust`` configures these from a scenario; a plain locustfile can subclass them::

    from loadgen.locust import OpenAIChatUser

    class ChatUser(OpenAIChatUser):
        model = "llama-3-8b"
        prompts = "scenarios/prompts/default.jsonl"
        max_tokens = 128

Each LLM request is one Locust request: its response time is the end-to-end latency, its
"response length" the output tokens, and a failure carries loadgen's error kind, so Locust's RPS,
failures, charts and CSVs mean what Locust users expect. TTFT, ITL, TPOT and tokens/s are
loadgen's own exact HDR figures (merged across workers): the web UI's loadgen tab shows them with
live charts, headless mode prints a loadgen line under Locust's periodic stats, and ``--csv PREFIX``
gets ``PREFIX_llm_stats.csv`` and ``PREFIX_llm_stats_history.csv`` beside Locust's files. The result
files are those of ``loadgen run``.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import gevent
import requests
from locust import User, constant, events, task
from locust.env import Environment
from locust.runners import WORKER_REPORT_INTERVAL, MasterRunner, WorkerRunner

from loadgen.clock import MonotonicClock
from loadgen.config import EndpointConfig, GenerationConfig, SloTarget
from loadgen.errors import ErrorKind
from loadgen.locust.exchange import BlockingContext, exchange
from loadgen.locust.launch import JOB_ENV, interrupted_mark
from loadgen.locust.live import LiveHistory, LiveWindow, latest_telemetry, progress_line, write_stats_csv
from loadgen.locust.recorder import Recorder, merged, table_rows, telemetry_rows, write_summary
from loadgen.metrics import request_metrics as rm
from loadgen.metrics.aggregate import Aggregator
from loadgen.parsing import public_url
from loadgen.prompts import Prompt, PromptPicker
from loadgen.prompts.loaders import load_prompts
from loadgen.protocols import endpoint_codec
from loadgen.protocols.base import GenerationParams
from loadgen.records import RequestRecord
from loadgen.redact import redact_logs, redactor
from loadgen.run.judge import Judgement
from loadgen.tokenizer import TokenCounter, load_token_counter

STATE_MESSAGE = "loadgen_state"
WINDOW_MESSAGE = "loadgen_window"
FINAL_WAIT_S = 2.0
LOCAL_TICK_S = 2.0  # as often as the web UI polls; a master ticks as often as its workers report
PARTIAL_EXIT_CODE = 1
stats_logger = logging.getLogger("locust.stats_logger")  # Locust's own console lines
logger = logging.getLogger(__name__)


class LoadgenLocust:
    """This process's share of the test: its recorder, and on the master every worker's state."""

    def __init__(self) -> None:
        self.output_dir = Path("results") / "locust"
        self.slo: tuple[SloTarget, ...] = ()
        self.endpoint: EndpointConfig | None = None
        self.pinned_target: str | None = None  # the --endpoint loadgen locust was given: the UI cannot move it
        self.stream = True
        self.tokenizer: str | None = None
        self.recorder: Recorder | None = None
        self.tests = 0
        self.worker_states: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.environment: Environment | None = None
        self.test_start_ns = 0
        self.batch_size = 1
        self.window: LiveWindow | None = None
        self.history = LiveHistory()
        self.lost_workers: set[str] = set()
        self.judgement = Judgement()
        self.interrupted_mark: Path | None = None  # exists once ``loadgen locust`` was stopped by a signal
        self._ticker: Any = None

    def test_directory(self) -> Path:
        return self.output_dir if self.tests <= 1 else self.output_dir / f"test-{self.tests:02d}"

    def start_test(self, environment: Environment) -> None:
        self.tests += 1
        self.test_start_ns = MonotonicClock.now_ns()
        self.worker_states.clear()
        self.lost_workers.clear()
        runner = environment.runner
        if not isinstance(runner, WorkerRunner):
            self.history = LiveHistory(self._csv_path(environment, "_llm_stats_history.csv"))
            self._start_ticking(environment)
        if isinstance(runner, MasterRunner):
            return
        directory = self.test_directory()
        if isinstance(runner, WorkerRunner):
            directory = directory / f"worker-{runner.worker_index}"
        with self.lock:
            self.recorder = Recorder(directory, self.slo)
            self.window = LiveWindow()

    @staticmethod
    def _csv_path(environment: Environment, suffix: str) -> Path | None:
        prefix = getattr(environment.parsed_options, "csv_prefix", None)
        return Path(prefix + suffix) if prefix else None

    # --- live figures: the loadgen tab's charts, the headless line, the history CSV -----------------

    def _start_ticking(self, environment: Environment) -> None:
        interval = WORKER_REPORT_INTERVAL if isinstance(environment.runner, MasterRunner) else LOCAL_TICK_S

        def tick_forever() -> None:
            while True:
                gevent.sleep(interval)
                self.tick(environment)

        self._stop_ticking()
        self._ticker = gevent.spawn(tick_forever)

    def _stop_ticking(self) -> None:
        if self._ticker is not None:
            self._ticker.kill(block=False)
            self._ticker = None

    def drain_window(self) -> dict[str, Any] | None:
        with self.lock:
            return self.window.drain() if self.window is not None else None

    def tick(self, environment: Environment) -> None:
        """One point of the live series, from the windows that came in since the last one."""
        runner = environment.runner
        if isinstance(runner, MasterRunner):
            self._notice_lost_workers(runner)
        else:
            window = self.drain_window()
            if window is not None:
                self.history.add_window("local", window)
        with self.lock:
            totals = self.aggregator()
            point = self.history.tick(runner.user_count if runner else 0, totals,
                                      latest_telemetry(self.output_dir / "telemetry.jsonl"))  # fmt: skip
        options = environment.parsed_options
        if getattr(options, "headless", False) and not getattr(options, "only_summary", False):
            stats_logger.info(progress_line(point))

    def _notice_lost_workers(self, runner: MasterRunner) -> None:
        missing = {node.id for node in runner.clients.missing}
        present = {node.id for node in runner.clients.values()} - missing
        for worker in list(self.worker_states):
            if (
                worker not in present
                and worker not in self.lost_workers
                and not self.worker_states[worker].get("final")
            ):
                self.lost_workers.add(worker)
                self.history.forget(worker)
                logger.warning(f"loadgen: worker {worker} was lost mid-test; its figures end at its last report "
                               "and the result is partial")  # fmt: skip

    def on_window(self, worker: str, window: dict[str, Any]) -> None:
        if worker not in self.lost_workers:
            self.history.add_window(worker, window)

    def on_record(self, record: RequestRecord) -> None:
        with self.lock:
            if self.recorder is not None and not self.recorder.closed:
                self.recorder.on_record(record)
                if self.window is not None:
                    self.window.on_record(record)

    def state(self, final: bool) -> dict[str, Any] | None:
        with self.lock:
            if self.recorder is None:
                return None
            state = self.recorder.state() if final else self.recorder.live_state()
        return {**state, "final": final}

    def stop_test(self, environment: Environment) -> None:
        runner = environment.runner
        if isinstance(runner, WorkerRunner):
            with self.lock:
                if self.recorder is not None:
                    self.recorder.close()
            state = self.state(final=True)
            if state is not None:
                runner.send_message(STATE_MESSAGE, state)
            return
        self._stop_ticking()
        if isinstance(runner, MasterRunner):
            waited = 0.0
            while waited < FINAL_WAIT_S and not self._all_final():
                gevent.sleep(0.1)
                waited += 0.1
            self._notice_lost_workers(runner)
        elif self.recorder is not None:
            with self.lock:
                self.recorder.close()
        self.tick(environment)  # the last requests' point
        self.write_results(environment)

    def _all_final(self) -> bool:
        return all(state.get("final") for worker, state in self.worker_states.items()
                   if worker not in self.lost_workers)  # fmt: skip

    @property
    def partial(self) -> bool:
        """A worker was lost, or did not send its final figures."""
        return bool(self.lost_workers) or not all(state.get("final") for state in self.worker_states.values())

    def aggregator(self) -> Aggregator:
        if self.recorder is not None:
            return self.recorder.aggregator
        return merged(list(self.worker_states.values()), self.slo)

    def write_results(self, environment: Environment) -> None:
        if self.tests == 0 or self.endpoint is None:
            return
        runner = environment.runner
        partial = isinstance(runner, MasterRunner) and self.partial
        processes = len(self.worker_states) if isinstance(runner, MasterRunner) else 1
        users = getattr(runner, "target_user_count", None) or (runner.user_count if runner else 0)
        with self.lock:
            aggregator = self.aggregator()
            started_at = self.recorder.started_at if self.recorder is not None else ""
            write_summary(
                aggregator, self.test_directory(), endpoint=_public(self.endpoint.url), api=self.endpoint.api,
                model=self.endpoint.model, stream=self.stream, users=users or 0, started_at=started_at,
                partial=partial, slo=self.slo, tokenizer=self.tokenizer, processes=processes,
                test_start_ns=self.test_start_ns, batch_size=self.batch_size,
                lost_workers=sorted(self.lost_workers), telemetry_file=self.output_dir / "telemetry.jsonl",
                judgement=self.judgement, output_errors=self.recorder.lost_writes() if self.recorder else None,
                interrupted=self.interrupted_mark is not None and self.interrupted_mark.exists(),
            )  # fmt: skip
            stats_csv = self._csv_path(environment, "_llm_stats.csv")
            if stats_csv is not None:
                write_stats_csv(stats_csv, aggregator)

    def extended_stats(self) -> list[dict[str, object]]:
        with self.lock:
            rows = table_rows(self.aggregator())
        return [{"key": "loadgen", "data": rows + telemetry_rows(self.output_dir / "telemetry.jsonl")}]


PROCESS = LoadgenLocust()


def _public(url: str) -> str:
    return public_url(url)


class LLMUser(User):
    """A user that sends prompts to an LLM endpoint, one request after another (closed loop).

    Configured by ``loadgen locust`` (a scenario and flags), or by class attributes in a locustfile:
    ``api``, ``model``, ``prompts`` (a file), ``max_tokens``, ``ignore_eos``, ``temperature``,
    ``stream``, ``extra_body``, ``headers`` and ``tokenizer``; ``host`` is the endpoint's base URL.
    """

    abstract = True
    wait_time = constant(0)
    api: ClassVar[str] = "openai-chat"
    model: ClassVar[str | None] = None
    prompts: ClassVar[str] = "builtin:default"
    max_tokens: ClassVar[int | None] = 256
    ignore_eos: ClassVar[bool] = False
    temperature: ClassVar[float | None] = None
    stream: ClassVar[bool] = True
    extra_body: ClassVar[dict[str, object]] = {}
    headers: ClassVar[dict[str, str]] = {}
    tokenizer: ClassVar[str | None] = None
    connect_timeout_s: ClassVar[float] = 10.0
    first_token_timeout_s: ClassVar[float] = 120.0
    seed: ClassVar[int] = 0
    _shared: ClassVar[dict[str, Any]] = {}
    _counter: ClassVar[itertools.count[int]] = itertools.count()

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        shared = self._setup()
        self._session = requests.Session()
        self._session.trust_env = False
        self._picker: PromptPicker = shared["picker"]
        self._batch_size: int = shared["batch_size"]
        # the target ``loadgen locust`` was given is pinned: the web UI's host field cannot move a
        # load (and its API key) elsewhere
        pinned = PROCESS.pinned_target
        self._context: BlockingContext = replace(shared["context"], base_url=(pinned or self.host or "").rstrip("/"))

    @classmethod
    def _setup(cls) -> dict[str, Any]:
        """Codec, prompts and tokenizer, built once per class and process."""
        key = cls.__qualname__
        if key in cls._shared:
            cached: dict[str, Any] = cls._shared[key]
            return cached
        plan = _job_plan()
        if plan is not None:
            endpoint, generation, prompts = plan.endpoint, plan.generation, list(plan.prompts)
            token_counter = load_token_counter(plan.tokenizer) if plan.tokenizer else None
            secrets = plan.secrets
            seed, batch_size = plan.levels[0].seed, plan.levels[0].batch_size
        else:
            endpoint = EndpointConfig(url="", api=cls.api, model=cls.model, headers=tuple(cls.headers.items()),
                                      connect_timeout_s=cls.connect_timeout_s,
                                      first_token_timeout_s=cls.first_token_timeout_s)  # fmt: skip
            generation = GenerationConfig(max_tokens=cls.max_tokens, ignore_eos=cls.ignore_eos,
                                          temperature=cls.temperature, stream=cls.stream,
                                          extra_body=tuple(cls.extra_body.items()))  # fmt: skip
            prompts = load_prompts(cls.prompts)
            token_counter = load_token_counter(cls.tokenizer) if cls.tokenizer else None
            secrets = tuple(cls.headers.values())
            seed, batch_size = cls.seed, 1
            PROCESS.endpoint = endpoint
            PROCESS.stream = generation.stream
            PROCESS.tokenizer = cls.tokenizer
        shared = {
            "picker": PromptPicker(prompts, seed),
            "batch_size": batch_size,
            "context": BlockingContext(
                base_url="", codec=_codec(endpoint, token_counter), params=GenerationParams(endpoint.model, generation),
                headers=dict(endpoint.headers), connect_timeout_s=endpoint.connect_timeout_s,
                read_timeout_s=endpoint.first_token_timeout_s, total_timeout_s=endpoint.total_timeout_s,
                run_start_ns=0, token_counter=token_counter,
                redact=_redactor(secrets), verify_tls=endpoint.verify_tls,
            ),
        }  # fmt: skip
        cls._shared[key] = shared
        return shared

    @task
    def generate(self) -> None:
        index = next(self._counter)
        prompt: Prompt = self._picker.pick_batch(index, self._batch_size)
        context = self._context
        if PROCESS.recorder is not None and context.run_start_ns != PROCESS.recorder.run_start_ns:
            context = self._context = replace(context, run_start_ns=PROCESS.recorder.run_start_ns)
        record = exchange(self._session, context, index, prompt, on_cancelled=PROCESS.on_record)
        PROCESS.on_record(record)
        self._report(record, context)

    def _report(self, record: RequestRecord, context: BlockingContext) -> None:
        """One Locust request per LLM request; TTFT, ITL and tokens/s are loadgen's own stats."""
        exception = None if record.error_kind is None else LLMRequestError(record.error_kind, record.error or "")
        self.environment.events.request.fire(
            request_type="POST", name=context.codec.name, response_time=(rm.e2e_ns(record) or 0) / 1e6,
            response_length=record.output_tokens or 0, exception=exception, context={"prompt_id": record.prompt_id},
        )  # fmt: skip


class LLMRequestError(Exception):
    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(f"{kind.value}: {message}")
        self.kind = kind


class OpenAIChatUser(LLMUser):
    abstract = True
    api = "openai-chat"


class OpenAICompletionsUser(LLMUser):
    abstract = True
    api = "openai-completions"


class TgiUser(LLMUser):
    abstract = True
    api = "tgi"


class LmiUser(LLMUser):
    abstract = True
    api = "lmi"


class TritonGenerateUser(LLMUser):
    abstract = True
    api = "triton-generate"


def _codec(endpoint: EndpointConfig, token_counter: TokenCounter | None) -> Any:
    return endpoint_codec(endpoint, token_counter.encode if token_counter is not None else None)


def _redactor(secrets: tuple[str, ...]) -> Any:
    return redactor(secrets)


@functools.cache
def _job_plan() -> Any:
    """The plan ``loadgen locust`` resolved for this process (None in a plain locustfile run)."""
    path = os.environ.get(JOB_ENV)
    if not path:
        return None
    from loadgen.run.workers import plan_from_job

    return plan_from_job(json.loads(Path(path).read_text("utf-8")))


def _on_init(environment: Environment, **_: object) -> None:
    PROCESS.environment = environment
    plan = _job_plan()
    # gevent's loop caches "now" until its next iteration: the time this process spent starting
    # (imports, the job, the prompts) would be taken off Locust's --run-time timer, which is
    # scheduled next (a 2 s test stopped after 43 ms, with no request completed)
    gevent.get_hub().loop.update_now()
    if plan is not None:
        PROCESS.pinned_target = plan.endpoint.url
        PROCESS.output_dir = plan.output_dir
        PROCESS.slo = plan.slo
        PROCESS.endpoint = plan.endpoint
        PROCESS.stream = plan.generation.stream
        PROCESS.tokenizer = plan.tokenizer
        PROCESS.batch_size = plan.levels[0].batch_size
        PROCESS.judgement = Judgement(plan.max_error_rate, plan.fail_on)
        PROCESS.interrupted_mark = interrupted_mark(Path(os.environ[JOB_ENV]))
        redact_logs(redactor(plan.secrets))
    runner = environment.runner
    if isinstance(runner, MasterRunner):

        def on_state(environment: Environment, msg: Any, **_: object) -> None:
            if msg.node_id not in PROCESS.lost_workers:
                PROCESS.worker_states[msg.node_id] = msg.data

        runner.register_message(STATE_MESSAGE, on_state)
    if environment.web_ui is not None:
        from loadgen.locust.webui import extend_web_ui

        extend_web_ui(environment, PROCESS)


def _on_report_to_master(client_id: str, data: dict[str, Any]) -> None:
    state = PROCESS.state(final=PROCESS.recorder is not None and PROCESS.recorder.closed)
    if state is not None:
        data[STATE_MESSAGE] = state
    window = PROCESS.drain_window()
    if window is not None:
        data[WINDOW_MESSAGE] = window


def _on_worker_report(client_id: str, data: dict[str, Any]) -> None:
    if client_id in PROCESS.lost_workers:
        return
    state = data.get(STATE_MESSAGE)
    if state is not None and not PROCESS.worker_states.get(client_id, {}).get("final"):
        PROCESS.worker_states[client_id] = state
    window = data.get(WINDOW_MESSAGE)
    if window is not None:
        PROCESS.on_window(client_id, window)


def _on_test_start(environment: Environment, **_: object) -> None:
    PROCESS.start_test(environment)


def _on_test_stop(environment: Environment, **_: object) -> None:
    PROCESS.stop_test(environment)


def _on_quitting(environment: Environment, **_: object) -> None:
    if isinstance(environment.runner, MasterRunner):
        PROCESS.write_results(environment)  # again: the workers' last reports come in while quitting
        if PROCESS.partial and PROCESS.tests:
            environment.process_exit_code = PARTIAL_EXIT_CODE


# registered, not decorated: Locust's event hooks are untyped (Any keeps mypy --strict from tracing them)
hooks: Any = events
hooks.init.add_listener(_on_init)
hooks.report_to_master.add_listener(_on_report_to_master)
hooks.worker_report.add_listener(_on_worker_report)
hooks.test_start.add_listener(_on_test_start)
hooks.test_stop.add_listener(_on_test_stop)
hooks.quitting.add_listener(_on_quitting)
