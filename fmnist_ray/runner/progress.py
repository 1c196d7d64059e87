"""Progress of a whole grid: on a terminal or in a notebook, a live `rich` display (an overall
bar with done, running, pending and failed counts and an ETA, a few lines for the longest- and
most-recently-running runs and the last failures, finished runs printed above); in a log or a
Ray Job, plain heartbeat lines. Its cost per update and per landing is the same at 16 runs in
flight as at 1,000: counts and work done are kept as runs move, never summed over the grid."""

from __future__ import annotations

import importlib.util
import itertools
import sys
import time
from collections import deque
from typing import TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

HEARTBEAT_S = 30.0  # a log gets one status line this often, not a flood
OLDEST_ROWS = 4  # running runs shown: the longest running (the slowest) ...
RECENT_ROWS = 4  # ... and the most recently started
FAILURE_ROWS = 3  # the last failures


def live_console(stream: TextIO) -> Console | None:
    """A console for a live display on `stream`: a terminal, or a notebook's own output when
    ipywidgets is installed (rich draws the display as a widget there); None for a log."""
    if stream.isatty():
        return Console(file=stream)
    console = Console(file=stream)
    in_notebook = stream is sys.stdout and console.is_jupyter
    return console if in_notebook and importlib.util.find_spec("ipywidgets") else None


def clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class GridProgress:
    """Fed by the runner: `update` with which runs started and their epochs, `finished` and
    `failed` as results land. The ETA weighs each run by its estimated cost, so the long runs
    that go first do not make it swing."""

    def __init__(
        self,
        runs: dict[str, tuple[str, int, float]],  # run id -> (label, epochs, estimated seconds)
        stream: TextIO,
        heartbeat_s: float = HEARTBEAT_S,
    ):
        self.runs = runs
        self.stream = stream
        self.heartbeat_s = heartbeat_s
        self.start = time.time()
        self.last_heartbeat = self.start
        self.started: dict[str, float] = {}
        self.epochs: dict[str, int] = {}
        self.done: set[str] = set()
        self.failed_ids: set[str] = set()
        self.recent_failures: deque[str] = deque(maxlen=FAILURE_ROWS)
        self.total_cost = sum(cost for _, _, cost in runs.values()) or 1.0
        self.work_landed = 0.0  # estimated seconds of the runs that landed
        self.work_running = 0.0  # ... and of the epochs done by runs in flight
        self.live: Live | None = None
        console = live_console(stream)
        if console is not None:
            self.live = Live(console=console, refresh_per_second=2, transient=True)
            self.live.start()

    def update(self, started: dict[str, float], epochs: dict[str, int]) -> None:
        """What changed since the last update: runs started, epochs reached (a run that has
        already landed is ignored: its last changes can arrive after its result)."""
        for run_id, at in started.items():
            if run_id in self.runs and not self.landed(run_id):
                self.started.pop(run_id, None)  # a retried run moves to the newest
                self.started[run_id] = at
        for run_id, epoch in epochs.items():
            if run_id in self.started:
                self._set_epoch(run_id, epoch)
        if self.live is not None:
            self.live.update(self._render())
        elif time.time() - self.last_heartbeat >= self.heartbeat_s:
            print(self.heartbeat(), file=self.stream, flush=True)
            self.last_heartbeat = time.time()

    def landed(self, run_id: str) -> bool:
        return run_id in self.done or run_id in self.failed_ids

    def _set_epoch(self, run_id: str, epoch: int) -> None:
        _, epochs, cost = self.runs[run_id]
        before = min(self.epochs.get(run_id, 0), epochs)
        self.epochs[run_id] = epoch
        self.work_running += cost * (min(epoch, epochs) - before) / epochs

    def _end(self, run_id: str) -> None:
        if self.landed(run_id):
            return
        if run_id in self.epochs:
            self._set_epoch(run_id, 0)
            del self.epochs[run_id]
        self.started.pop(run_id, None)
        self.work_landed += self.runs[run_id][2]

    def finished(self, run_id: str, text: str) -> None:
        self._end(run_id)
        self.done.add(run_id)
        self._print(f"{run_id}  {self.runs[run_id][0]}  {text}")

    def failed(self, run_id: str, text: str) -> None:
        self._end(run_id)
        self.failed_ids.add(run_id)
        self.recent_failures.append(f"FAILED {self.runs[run_id][0]}: {text}")
        self._print(f"{run_id}  {self.runs[run_id][0]}  FAILED  {text}")

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def _print(self, line: str) -> None:
        if self.live is not None:
            self.live.console.print(Text(line))
        else:
            print(line, file=self.stream, flush=True)

    @property
    def running(self) -> list[str]:
        return list(self.started)

    def shown_running(self) -> list[str]:
        """The runs a display lists: the longest running, then the most recently started."""
        oldest = list(itertools.islice(self.started, OLDEST_ROWS))
        newest = [r for r in itertools.islice(reversed(self.started), RECENT_ROWS)
                  if r not in oldest]  # fmt: skip
        return oldest + newest[::-1]

    def counts(self) -> dict[str, int]:
        running = len(self.started)
        ended = len(self.done) + len(self.failed_ids)
        return {
            "done": len(self.done),
            "running": running,
            "pending": len(self.runs) - ended - running,
            "failed": len(self.failed_ids),
        }

    def fraction(self) -> float:
        """Share of the estimated work that is done, counting running runs by their epochs."""
        return min(1.0, (self.work_landed + self.work_running) / self.total_cost)

    def eta(self) -> str:
        fraction, elapsed = self.fraction(), time.time() - self.start
        return clock(elapsed * (1 - fraction) / fraction) if fraction > 0 else "--"

    def heartbeat(self) -> str:
        counts = ", ".join(f"{n} {name}" for name, n in self.counts().items())
        running = "; ".join(
            f"{self.runs[r][0]} epoch {self.epochs.get(r, 0)}/{self.runs[r][1]}"
            for r in self.shown_running()
        )
        hidden = len(self.started) - len(self.shown_running())
        running += f"; and {hidden} more" if hidden > 0 else ""
        return (
            f"[{counts}] {self.fraction():.0%} of the work, elapsed "
            f"{clock(time.time() - self.start)}, ETA {self.eta()}"
            + (f" | running: {running}" if running else "")
        )

    def _render(self) -> Group:
        counts = self.counts()
        head = Table.grid(padding=(0, 1))
        head.add_row(
            ProgressBar(total=1.0, completed=self.fraction(), width=30),
            Text(
                f"{counts['done']} done, {counts['running']} running, {counts['pending']} "
                f"pending, {counts['failed']} failed  elapsed {clock(time.time() - self.start)}"
                f"  ETA {self.eta()}"
            ),
        )
        lines = Table.grid(padding=(0, 1))
        for run_id in self.shown_running():
            label, epochs, _ = self.runs[run_id]
            epoch = self.epochs.get(run_id, 0)
            lines.add_row(
                ProgressBar(total=epochs, completed=epoch, width=20),
                Text(f"epoch {epoch}/{epochs}"),
                Text(label, overflow="ellipsis", no_wrap=True),
            )
        hidden = len(self.started) - lines.row_count
        if hidden > 0:
            lines.add_row(Text(""), Text(""), Text(f"... and {hidden} more running"))
        for failure in self.recent_failures:
            lines.add_row(Text(""), Text(""), Text(failure, style="red", overflow="ellipsis",
                                                   no_wrap=True))  # fmt: skip
        return Group(head, lines)
