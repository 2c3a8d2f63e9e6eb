"""Engine layer: run control. Closed loop (virtual users) or open loop (scheduled arrivals).

Every request has an *intended* send time: in open loop the arrival schedule's, in closed loop the
moment its user became free (the arrival of the last byte of its previous answer). Latencies are
measured from it, so a client or server that falls behind shows up in the numbers (no coordinated
omission); ``sent − intended`` is the schedule (send) lag.

Every task has an owner: the runner creates users, the dispatcher and in-flight requests, and
cancels whatever is left when the run ends (drain timeout, or Ctrl-C).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import gc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from loadgen.config import LoadConfig, LoadMode
from loadgen.engine.arrivals import arrival_gaps_ns, stage_target, staged_arrival_offsets_ns
from loadgen.engine.limits import concurrent_requests
from loadgen.engine.request import RequestContext, execute_request
from loadgen.prompts import Prompt, PromptPicker
from loadgen.prompts.sessions import SessionLoad
from loadgen.prompts.trace import TraceEntry
from loadgen.records import RequestRecord

YOUNG_COLLECTION_THRESHOLD = 20_000


class StopReason(str, enum.Enum):
    """Why a level ended (``summary.json`` ``stop_reason``)."""

    COMPLETED = "completed"
    INTERRUPTED = "interrupted"  # a signal
    STOPPED_EARLY = "stopped_early_over_slo"  # a find-max probe that could not meet the SLOs
    WORKER_LOST = "worker_lost"  # a worker process (--workers, or a Locust worker) died mid-level
    LOCUST_STOPPED = "locust_stopped"  # Locust ended the test (its run time, or the web UI's stop)
    NO_SUMMARY = "ended_without_summary"  # the command was killed: rebuilt afterwards from its records


@dataclass(frozen=True, slots=True)
class RunOutcome:
    stop_reason: StopReason
    issued: int
    drain_cancelled: int

    @property
    def partial(self) -> bool:
        return self.stop_reason is StopReason.INTERRUPTED


@dataclass(frozen=True, slots=True)
class Ticket:
    index: int
    warmup: bool


class Tickets:
    """Hands out request indices; decides warm-up and when to stop issuing."""

    def __init__(self, load: LoadConfig, run_start_ns: int) -> None:
        self._load = load
        self._run_start_ns = run_start_ns
        self._warmup_end_ns = run_start_ns + round(load.warmup_s * 1e9)
        self._measure_start_ns: int | None = None
        self._measured = 0
        self._deadline: asyncio.TimerHandle | None = None
        self.issued = 0
        self.exhausted = asyncio.Event()

    def close(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()

    def take(self, intended_ns: int) -> Ticket | None:
        if self.exhausted.is_set():
            return None
        load = self._load
        warmup = self.issued < load.warmup_requests or intended_ns < self._warmup_end_ns
        if not warmup:
            if self._measure_start_ns is None:
                self._measure_start_ns = intended_ns
                if load.duration_s is not None:
                    # a duration bounds the run even when no request ends to take the next ticket
                    self._deadline = asyncio.get_running_loop().call_later(load.duration_s, self.exhausted.set)
            over_count = load.requests is not None and self._measured >= load.requests
            over_time = load.duration_s is not None and (intended_ns - self._measure_start_ns >= load.duration_s * 1e9)
            if over_count or over_time:
                self.exhausted.set()
                return None
            self._measured += 1
        # with worker processes, this worker's j-th request is the split load's request
        # worker_index + j × worker_count: the same numbering (and prompts) a single process would use
        ticket = Ticket(load.worker_index + self.issued * load.worker_count, warmup)
        self.issued += 1
        return ticket


class LoadRunner:
    def __init__(
        self,
        load: LoadConfig,
        context: RequestContext,
        picker: PromptPicker,
        publish: Callable[[RequestRecord], None],
        stop: asyncio.Event,
        trace: Sequence[TraceEntry] | None = None,
        schedule_origin_ns: int | None = None,
        sessions: SessionLoad | None = None,
    ) -> None:
        """``schedule_origin_ns``: when the open-loop schedule starts (shared by worker processes);
        by default the moment the run starts."""
        if load.requests is None and load.duration_s is None and trace is None and not load.stages:
            raise ValueError("a run needs a request count, a duration, stages or a trace")
        self._trace = trace
        self._sessions = sessions
        self._sessions_started = 0
        self._schedule_origin_ns = schedule_origin_ns
        self._retiring: set[int] = set()
        self._load = load
        self._ctx = context
        self._picker = picker
        self._publish = publish
        self._stop = stop
        self._tickets = Tickets(load, context.run_start_ns)
        self._inflight: set[asyncio.Task[None]] = set()
        self._deferred = 0

    def _publish_soon(self, record: RequestRecord) -> None:
        """Records are published after the callbacks already queued: when many requests end in
        one burst, their users' next requests go out before the bookkeeping of the ended ones."""
        self._deferred += 1
        asyncio.get_running_loop().call_soon(self._publish_deferred, record)

    def _publish_deferred(self, record: RequestRecord) -> None:
        self._deferred -= 1
        self._publish(record)

    @property
    def issued(self) -> int:
        return self._tickets.issued

    async def run(self) -> RunOutcome:
        """Issue until the count/duration is reached (or Ctrl-C), drain, then cancel what is left."""
        if self._load.mode is LoadMode.CLOSED and self._load.stages:
            workers = [asyncio.ensure_future(self._staged_users())]
        elif self._load.mode is LoadMode.CLOSED:
            users = self._load.concurrency
            workers = [asyncio.ensure_future(self._user(self._load.ramp_up_s * k / users, k)) for k in range(users)]
        else:
            workers = [asyncio.ensure_future(self._dispatch())]
        stop_wait = asyncio.ensure_future(self._stop.wait())
        exhausted_wait = asyncio.ensure_future(self._tickets.exhausted.wait())
        try:
            await asyncio.wait([stop_wait, exhausted_wait, *workers], return_when=asyncio.FIRST_COMPLETED)
            _raise_worker_failure(workers)
            if not self._stop.is_set():
                remaining = [task for task in (*workers, *self._inflight) if not task.done()]
                if remaining:
                    drained: list[asyncio.Future[Any]] = [stop_wait, asyncio.gather(*remaining, return_exceptions=True)]
                    await asyncio.wait(drained, timeout=self._load.drain_timeout_s, return_when=asyncio.FIRST_COMPLETED)
                _raise_worker_failure(workers)
        finally:
            cancelled = await _cancel_all([*workers, *self._inflight])
            stop_wait.cancel()
            exhausted_wait.cancel()
            self._tickets.close()
            while self._deferred:
                await asyncio.sleep(0)
        reason = StopReason.INTERRUPTED if self._stop.is_set() else StopReason.COMPLETED
        return RunOutcome(reason, self._tickets.issued, cancelled)

    async def _user(self, start_delay_s: float, user_id: int) -> None:
        now_ns = self._ctx.clock.now_ns
        if start_delay_s > 0:
            await asyncio.sleep(start_delay_s)
        intended_ns = now_ns()
        if self._sessions is not None:
            await self._session_user(self._sessions, intended_ns, user_id)
            return
        while not self._stop.is_set() and user_id not in self._retiring:
            ticket = self._tickets.take(intended_ns)
            if ticket is None:
                return
            # the user is free, and means to send its next request, when the last byte of its
            # previous answer arrived: a late read shows as send lag, not as a quieter server
            ended_ns = await execute_request(
                self._ctx,
                ticket.index,
                self._picker.pick_batch(ticket.index, self._load.batch_size),
                intended_ns,
                ticket.warmup,
                self._publish_soon,
            )
            intended_ns = ended_ns if ended_ns is not None else now_ns()

    async def _session_user(self, plan: SessionLoad, intended_ns: int, user_id: int) -> None:
        """Closed loop: one session at a time, each due when the last one's answer ended."""
        load = self._load
        while not self._stop.is_set() and user_id not in self._retiring:
            # the n-th session started, numbered across worker processes as a single one would
            number = load.worker_index + self._sessions_started * load.worker_count
            self._sessions_started += 1
            ended_ns = await self._run_session(plan, number, intended_ns)
            if ended_ns is None:
                return
            intended_ns = ended_ns

    async def _run_session(self, plan: SessionLoad, number: int, intended_ns: int) -> int | None:
        """Session ``number``, turn after turn: each turn sends the history (the earlier turns and
        their replies) and is due when the previous answer's last byte arrived, plus the user's
        think time (which is not latency: a late send is still measured from when it was due).
        Returns when its last answer ended, or None when the run stopped or its count ran out."""
        now_ns = self._ctx.clock.now_ns
        session = plan.sessions[number % len(plan.sessions)]
        instance = f"{session.id}/{number + 1}"
        history: tuple[dict[str, str], ...] = ()
        for turn_index, turn in enumerate(session.turns):
            think_s = plan.think_s(instance, turn_index, turn)
            if think_s:
                intended_ns += round(think_s * 1e9)
                await _sleep_until(intended_ns, now_ns)
            if self._stop.is_set():
                return None
            ticket = self._tickets.take(intended_ns)
            if ticket is None:
                return None
            prompt = session.prompt(turn_index, history, instance)
            answer: list[str] = []
            ended_ns = await execute_request(self._ctx, ticket.index, prompt, intended_ns, ticket.warmup,
                                             self._publish_soon, answer)  # fmt: skip
            recorded = plan.history == "recorded" and turn.assistant is not None
            reply = turn.assistant if recorded else "".join(answer)
            history = (*(prompt.messages or ()), {"role": "assistant", "content": reply or ""})
            intended_ns = ended_ns if ended_ns is not None else now_ns()
        return intended_ns

    def _arrivals(self) -> Iterator[tuple[int, Prompt | None]]:
        """(offset from the start in ns, the prompt when the schedule brings its own)."""
        load = self._load
        if self._trace is not None:
            for entry in self._trace:
                yield entry.offset_ns, entry.prompt
        elif load.stages:
            for offset_ns in staged_arrival_offsets_ns(load.stages, load.seed):
                yield offset_ns, None
        else:
            assert load.rate_rps is not None
            offset_ns = 0
            for gap_ns in arrival_gaps_ns(load.arrival, load.rate_rps, load.seed, load.burstiness):
                yield offset_ns, None
                offset_ns += gap_ns

    async def _dispatch(self) -> None:
        load = self._load
        now_ns = self._ctx.clock.now_ns
        slots = asyncio.Semaphore(concurrent_requests(load))
        start_ns = now_ns() if self._schedule_origin_ns is None else self._schedule_origin_ns
        share, of = load.worker_index, load.worker_count
        for position, (offset_ns, prompt) in enumerate(self._arrivals()):
            if position % of != share:
                continue  # another worker process sends this arrival
            if self._stop.is_set():
                return
            intended_ns = start_ns + offset_ns
            if self._sessions is not None:  # open loop: sessions, not requests, arrive at the rate
                if self._tickets.exhausted.is_set():
                    return
                await _sleep_until(intended_ns, now_ns)
                if slots is not None:
                    await slots.acquire()
                task = asyncio.ensure_future(self._arriving_session(self._sessions, position, intended_ns, slots))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
                continue
            ticket = self._tickets.take(intended_ns)
            if ticket is None:
                return
            await _sleep_until(intended_ns, now_ns)
            if slots is not None:
                await slots.acquire()
            chosen = prompt if prompt is not None else self._picker.pick_batch(ticket.index, self._load.batch_size)
            task = asyncio.ensure_future(self._send(ticket, chosen, intended_ns, slots))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        self._tickets.exhausted.set()  # the schedule ran out

    async def _staged_users(self) -> None:
        """Closed-loop stages: every 100 ms, start users or retire the newest (after their current
        request) so the count follows the stages."""
        load = self._load
        clock = self._ctx.clock
        started_ns = clock.now_ns()
        total_s = sum(stage.duration_s for stage in load.stages)
        users: list[asyncio.Task[None]] = []
        while not self._stop.is_set() and not self._tickets.exhausted.is_set():
            elapsed_s = (clock.now_ns() - started_ns) / 1e9
            if elapsed_s >= total_s:
                break
            target = round(stage_target(load.stages, elapsed_s))
            active = [k for k, task in enumerate(users) if not task.done() and k not in self._retiring]
            for _ in range(target - len(active)):
                task = asyncio.ensure_future(self._user(0.0, len(users)))
                users.append(task)
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
            for user_id in active[target:] if len(active) > target else ():
                self._retiring.add(user_id)
            await asyncio.sleep(0.1)
        self._tickets.exhausted.set()

    async def _arriving_session(self, plan: SessionLoad, number: int, intended_ns: int,
                                slots: asyncio.Semaphore | None) -> None:  # fmt: skip
        try:
            await self._run_session(plan, number, intended_ns)
        finally:
            if slots is not None:
                slots.release()

    async def _send(self, ticket: Ticket, prompt: Prompt, intended_ns: int, slots: asyncio.Semaphore | None) -> None:
        try:
            await execute_request(self._ctx, ticket.index, prompt, intended_ns, ticket.warmup, self._publish_soon)
        finally:
            if slots is not None:
                slots.release()


@contextlib.contextmanager
def quiet_garbage_collector() -> Iterator[None]:
    """Keeps full garbage collections off the hot path while a load runs: everything made during
    set-up is frozen out of the collector's scans, and young collections run less often (the hot
    path makes short-lived objects that reference counting frees; cycles wait for the end)."""
    gc.collect()
    gc.freeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(max(thresholds[0], YOUNG_COLLECTION_THRESHOLD), thresholds[1], max(thresholds[2], 100))
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def _raise_worker_failure(workers: Sequence[asyncio.Future[None]]) -> None:
    """A worker that died of an exception is a bug in loadgen: surface it, never swallow it."""
    for worker in workers:
        if worker.done() and not worker.cancelled():
            failure = worker.exception()
            if failure is not None:
                raise failure


async def _cancel_all(tasks: Sequence[asyncio.Future[None]]) -> int:
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return len(pending)


async def _sleep_until(due_ns: int, now_ns: Callable[[], int]) -> None:
    """Never early: event-loop timers have millisecond granularity and can fire before their
    time; an open-loop request must not leave before its intended send time. The last
    millisecond is spent yielding to other tasks."""
    remaining_ns = due_ns - now_ns()
    if remaining_ns > 1_000_000:
        await asyncio.sleep((remaining_ns - 1_000_000) / 1e9)
    while now_ns() < due_ns:
        await asyncio.sleep(0)
