"""The driver's side of a grid in flight: a queue of runs per resource shape (longest first), a
trainer per slot fed one run at a time, each result handed to a pool of writers as it lands (an
object store answers each write after a round trip: one at a time, the driver would land a few
runs a second), a dead trainer replaced and its run retried, and the wind-down that keeps
finished runs when the grid stops."""

from __future__ import annotations

import math
import re
import time
import traceback
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, TextIO

import ray

from ..outcome import RunRecord, record
from ..planning.plan import Plan, PlannedRun
from ..planning.sizing import OutOfDeviceMemory, TrainerCannotStart
from ..spec.config import Resources
from ..spec.metrics import HEADLINE, SECONDS
from ..spec.result import RunResult
from .collect import DestinationError, save_failure, save_result
from .progress import GridProgress
from .signals import held, patient
from .trainer import Trainer, TrainFn, trainer_slots

ANSI = re.compile(r"\x1b\[[0-9;]*m")
Answer = RunResult | Exception  # a trainer's answer: the run's result, or what `ray.get` raised
WRITERS = 16  # results written at once; past 4 x this many waiting, the driver waits for one
POLL_EVERY = 0.25  # seconds between asks of the progress board: a live display, not a log


@dataclass(frozen=True)
class Flight:
    """A run sent to a trainer and not yet collected."""

    run: PlannedRun
    trainer: Any  # the Trainer actor's handle
    shape: Resources


@dataclass
class Dispatch:
    """Runs queued per resource shape, fed to that shape's trainers one at a time."""

    plan: Plan
    commit: str | None
    max_retries: int
    progress: GridProgress
    pending: dict[Any, Flight] = field(default_factory=dict)
    queues: dict[Resources, deque[PlannedRun]] = field(default_factory=dict)
    deaths: dict[str, int] = field(default_factory=dict)  # run id -> attempts its trainer died in
    alone: set[str] = field(default_factory=set)  # run ids retried alone on a whole GPU
    trainers: list[Any] = field(default_factory=list)  # every trainer started, to stop at the end
    start_args: tuple = ()
    poll: Any = None  # the progress board's answer in flight, a future (update_progress)
    polled_at: float = -math.inf  # when it was asked (time.monotonic)
    ended: list[RunRecord] = field(default_factory=list)  # trained, failed or not saved, in turn
    signal: int | None = None  # the signal that stopped the grid, if one did
    writers: int = field(default_factory=lambda: WRITERS)
    writes: dict[Future, tuple[PlannedRun, RunResult]] = field(default_factory=dict)
    pool: ThreadPoolExecutor | None = None

    def start(self, todo, resolved, data_ref, board, train_fn: TrainFn | None) -> None:
        """Queue the runs in the order given (longest first) and start each shape's trainers,
        as many as its slots and runs allow, each with its first run. `data_ref`: the dataset
        in the object store, which every trainer reads (no dataset files on the nodes)."""
        self.start_args = (data_ref, board, train_fn, self.commit)
        for run in todo:
            self.queues.setdefault(resolved[run.resources], deque()).append(run)
        for shape, queue in self.queues.items():
            for _ in range(min(trainer_slots(shape), len(queue))):
                self.feed(self.new_trainer(shape), shape)

    def new_trainer(self, shape: Resources):
        data_ref, board, train_fn, commit = self.start_args
        trainer = Trainer.options(num_cpus=shape.cpus, num_gpus=shape.gpus or 0).remote(
            data_ref, shape.cpus, board, train_fn, commit
        )
        self.trainers.append(trainer)
        return trainer

    def feed(self, trainer, shape: Resources) -> None:
        """Send `trainer` the next run of its shape, or stop it (freeing its slot) if none."""
        queue = self.queues[shape]
        if not queue:
            ray.kill(trainer)
            return
        run = queue.popleft()
        answer = trainer.train.remote(run.config.model_dump_json())
        self.pending[answer] = Flight(run, trainer, shape)

    def wait_all(self, board) -> None:
        """Land answers and finished writes until no run is in flight or being written."""
        while self.pending or self.writes:
            if self.pending:  # with writes out, look back soon: each finishes a run's landing
                ready, _ = ray.wait(list(self.pending), num_returns=1,
                                    timeout=0.02 if self.writes else 1.0)  # fmt: skip
                for ref in ready:
                    self.land(ref)
            else:
                wait(self.writes, timeout=1.0, return_when=FIRST_COMPLETED)
            self.written()
            board = self.update_progress(board)

    def land(self, ref) -> None:
        """A trainer answered: retry its run if the trainer died, else give the trainer its next
        run (so it never waits on the saving) and save this one."""
        flight, got = self.pending[ref], answer(ref)
        if trainer_died(got):
            del self.pending[ref]
            self.retry(flight, got)
            return
        if raised(got, TrainerCannotStart):
            del self.pending[ref]
            self.replace(flight, got)
            return
        self.feed(flight.trainer, flight.shape)
        if 0 < flight.shape.gpus < 1 and raised(got, OutOfDeviceMemory):
            del self.pending[ref]
            self.retry_alone(flight)
            return
        self.collect(ref, got)

    def replace(self, flight: Flight, got: Answer) -> None:
        """A trainer that could not start (no GPU memory for its context or data) is stopped;
        its run goes to a whole GPU (or fails, if it had one), and a fresh trainer takes the
        shape's remaining runs when no other trainer of the shape is left to."""
        ray.kill(flight.trainer)
        if 0 < flight.shape.gpus < 1:
            self.retry_alone(flight)
        else:
            self._collect(got, flight.run)
        shape = flight.shape
        if self.queues[shape] and not any(other.shape == shape for other in self.pending.values()):
            self.feed(self.new_trainer(shape), shape)

    def retry_alone(self, flight: Flight) -> None:
        """A run that ran out of GPU memory beside others: queue it for a whole GPU (a trainer
        of that shape starts once one is free); not a failure, unless it runs out alone too."""
        alone = Resources(gpus=1.0, cpus=flight.shape.cpus)
        self.alone.add(flight.run.run_id)
        print(f"{flight.run.run_id}: out of GPU memory with {flight.shape.gpus:g} GPU; retried "
              "alone on a whole GPU", file=self.progress.stream)  # fmt: skip
        self.queues.setdefault(alone, deque()).append(flight.run)
        if not any(other.shape == alone for other in self.pending.values()):
            self.feed(self.new_trainer(alone), alone)

    def retry(self, flight: Flight, got: Answer) -> None:
        """The trainer died under `flight`'s run (a killed process, a lost node): queue the run
        first again until it has died max_retries + 1 times; a fresh trainer takes the slot if
        the cluster still has it (after a lost node, the other trainers take the run)."""
        run_id, shape = flight.run.run_id, flight.shape
        self.start_args[1].end.remote(run_id)  # the board: the run left its GPU with the trainer
        self.deaths[run_id] = self.deaths.get(run_id, 0) + 1
        if self.deaths[run_id] > self.max_retries:
            self._collect(got, flight.run)  # records the failure with the trainer's error
        else:
            self.queues[shape].appendleft(flight.run)
        alive = sum(1 for other in self.pending.values() if other.shape == shape)  # 1 run each
        if self.queues[shape] and alive < trainer_slots(shape):
            self.feed(self.new_trainer(shape), shape)

    def update_progress(self, board):
        """Take the progress actor's changes if its answer is in (one request in flight, never
        waited on: a slow board only delays what is shown), asking again at most every
        POLL_EVERY seconds, so the asking grows with the wall time, not with the runs; if it
        died, go on without live epochs (never stop)."""
        if board is None:
            return None
        now = time.monotonic()
        if self.poll is None and now - self.polled_at >= POLL_EVERY:
            # A future, not ray.wait(timeout=0): that call can swallow a pending Ctrl-C.
            self.poll, self.polled_at = board.changes.remote().future(), now
        changes: tuple[dict, dict] = ({}, {})
        if self.poll is not None and self.poll.done():
            try:
                changes = self.poll.result()
            except ray.exceptions.RayError:
                print("warning: progress actor lost; runs go on, epochs are no longer shown",
                      file=self.progress.stream)  # fmt: skip
                return None
            self.poll = None
        self.progress.update(*changes)
        return board

    def wind_down(self, stream: TextIO, why: str) -> None:
        """Save every run that has finished (collected or not), cancel the rest (in flight or
        queued). Further signals meanwhile only say that saving is under way."""

        def say() -> None:
            print(f"{why}: saving finished runs first, then stopping", file=stream, flush=True)

        with patient(say):
            refs = list(self.pending)
            ready = ray.wait(refs, num_returns=len(refs), timeout=0)[0] if refs else []
            for ref in ready:
                got = answer(ref)
                if trainer_died(got):
                    continue  # its run did not finish: cancelled below
                try:
                    self.collect(ref, got)
                except DestinationError:
                    pass  # that run is recorded as not saved (written); save the others
            self.written(every=True)
            for queue in self.queues.values():  # the runs left are cancelled (outcome_of)
                queue.clear()
            self.stop()

    def stop(self) -> None:
        """Stop every trainer (a run still in one is abandoned), and the writers once idle."""
        for trainer in self.trainers:
            ray.kill(trainer)
        self.trainers.clear()
        if self.pool is not None:
            self.pool.shutdown(wait=True)  # after a wind-down, none is left writing
            self.pool = None

    def collect(self, ref, got: Answer) -> None:
        """Hand one finished run to the writers (or record its failure) the moment it lands. A
        signal before that leaves it pending, so the wind-down saves it (a write is whole or
        absent)."""
        flight = self.pending.pop(ref)
        try:
            self._collect(got, flight.run)
        except KeyboardInterrupt:
            if not self.taken(flight.run.run_id):
                self.pending[ref] = flight
            raise

    def taken(self, run_id: str) -> bool:
        """The run is being written or was recorded (so the wind-down must not take it again)."""
        return any(run.run_id == run_id for run, _ in self.writes.values()) or any(
            item.run_id == run_id for item in self.ended
        )

    def _collect(self, got: Answer, run: PlannedRun) -> None:
        error = got if isinstance(got, Exception) else None
        if isinstance(error, ray.exceptions.RayError):
            cause = getattr(error, "cause", None)
            message = f"{type(cause or error).__name__}: {cause or error}".strip()
            # RayTaskError's text is the remote traceback, coloured for terminals: keep it plain.
            remote = isinstance(error, ray.exceptions.RayTaskError)
            attempts = 1 if remote else self.deaths.get(run.run_id, 1)  # raised: never retried
            self.failed(run, message.splitlines()[0], ANSI.sub("", str(error)) if remote
                        else message, attempts)  # fmt: skip
        elif error is not None:  # a result we cannot even read: one run's problem, not the grid's
            detail = "".join(traceback.format_exception(error))
            self.failed(run, detail.splitlines()[-1], detail, 1)
        else:
            self.write(run, got)

    def write(self, run: PlannedRun, result: RunResult) -> None:
        """Hand a finished run to the writers; when 4 x `writers` already wait, first land one
        (a destination slower than the runs holds the driver back, never its memory).

        Submitted and entered in `writes` with signals held: a Ctrl-C in between left a write
        under way that `writes` did not hold, so the run was not `taken`, and the wind-down
        wrote it again (the signal loop saw one run written 3 times)."""
        result.metadata["retried_alone"] = run.run_id in self.alone
        if self.pool is None:
            self.pool = ThreadPoolExecutor(self.writers, thread_name_prefix="fmnist-ray-write")
        with held():
            self.writes[self.pool.submit(save_result, run, self.plan, result)] = (run, result)
        while len(self.writes) > 4 * self.writers:  # this run is in: an error below loses none
            wait(self.writes, return_when=FIRST_COMPLETED)
            self.written()

    def written(self, every: bool = False) -> None:
        """Land the runs whose writes are done, each taken off the writes and recorded with
        signals held (a signal in between would leave a kept run counted as cancelled). A run
        the destination refused is recorded as not saved; then DestinationError is raised,
        unless `every` (wait for all, as the wind-down does)."""
        if every:
            wait(self.writes)
        refused = None
        for future in [future for future in self.writes if future.done()]:
            with held():
                run, result = self.writes.pop(future)
                try:
                    future.result()
                except DestinationError as error:
                    self.not_saved(error)
                    refused = refused or error
                    continue
                self.saved(run, result)
        if refused is not None and not every:
            raise refused

    def saved(self, run: PlannedRun, result: RunResult) -> None:
        """Say that a run was written, and record it."""
        final = result.history[-1]
        seconds = sum(row[SECONDS.name] for row in result.history)
        meta = result.metadata
        where = f"node {meta['host']}" + (
            f" gpu {','.join(meta['gpu_ids'])}" if meta["gpu_ids"] else ""
        )
        status = "" if result.status == "ok" else f"  {result.status.upper()}"
        shown = HEADLINE.show(final[HEADLINE.name])
        self.progress.finished(run.run_id, f"{shown}  {seconds:.0f}s  {where}{status}")
        self.ended.append(record(self.plan, run, result.status, final=final, seconds=seconds,
                                 metadata=meta))  # fmt: skip

    def failed(self, run: PlannedRun, headline: str, detail: str, attempts: int) -> None:
        path = save_failure(run, self.plan, detail, self.commit, attempts)
        paths = [] if isinstance(path, str) else [path]  # a str: it could not be recorded
        self.ended.append(record(self.plan, run, "failed", paths, error=headline))
        self.progress.failed(run.run_id, f"{headline[:120]}  -> {path}")

    def not_saved(self, error: DestinationError) -> None:
        """A finished run the destination kept refusing: its history is at `error.kept_at`."""
        run = next(run for run in self.plan.todo if run.run_id == error.run_id)
        self.ended.append(record(self.plan, run, "not saved", [error.kept_at], error=error.reason))


def answer(ref) -> Answer:
    """The answer of a ready `ref`, fetched once: the result, or the error (the trainer died,
    training raised, the result could not be read)."""
    try:
        return ray.get(ref, timeout=0)
    except Exception as error:
        return error


def trainer_died(got: Answer) -> bool:
    """The trainer's process died (not training raising): the run may be tried again."""
    return isinstance(got, ray.exceptions.RayActorError)


def raised(got: Answer, kind: type) -> bool:
    """Training (or starting the trainer) raised `kind`: OutOfDeviceMemory, TrainerCannotStart."""
    cause = getattr(got, "cause", None)
    return isinstance(got, ray.exceptions.RayTaskError) and isinstance(cause, kind)
