"""Progress at scale: the board hands the driver only what changed and forgets runs that ended,
the driver never waits on it (a slow board delays progress, never turns it off), and the live
display's cost per landing stays flat as runs in flight grow."""

import io
import sys
import time

import ray

from fmnist_ray.runner.dispatch import POLL_EVERY, Dispatch
from fmnist_ray.runner.progress import GridProgress
from fmnist_ray.runner.trainer import ProgressBoard

# The slow board below runs in a Ray worker, which cannot import a test file.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@ray.remote(num_cpus=0)
class SlowBoard:
    """A board whose first answer takes `delay` seconds (trainers slow to start)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def changes(self):
        time.sleep(self.delay)
        self.delay = 0.0
        return {"a": time.time()}, {"a": 1}


def test_the_board_hands_over_only_changes_and_forgets_ended_runs(local_ray):
    local_ray(num_cpus=1)
    board = ProgressBoard.remote()
    ray.get([board.start.remote("a", "gpu0"), board.start.remote("b", "gpu0")])
    ray.get([board.start.remote("c"), board.epoch.remote("a", 1)])
    started, epochs = ray.get(board.changes.remote())
    assert set(started) == {"a", "b", "c"} and epochs == {"a": 1}
    assert ray.get(board.changes.remote()) == ({}, {})  # nothing moved since
    ray.get(board.epoch.remote("a", 2))
    assert ray.get(board.changes.remote()) == ({}, {"a": 2})
    assert ray.get(board.end.remote("a")) == 2  # two runs at once on gpu0: kept for metadata
    assert ray.get(board.end.remote("c")) is None  # on the CPU
    started, epochs = ray.get(board.snapshot.remote())
    assert set(started) == {"b"} and epochs == {}  # ended runs pruned
    ray.kill(board)


def test_a_slow_board_never_blocks_the_driver_nor_turns_progress_off(local_ray):
    local_ray(num_cpus=1)
    board = SlowBoard.remote(3.0)
    out = io.StringIO()
    progress = GridProgress({"a": ("exp: seed=0", 2, 1.0)}, out)
    grid = Dispatch(None, None, 0, progress)
    deadline = time.time() + 60
    while "a" not in progress.started and time.time() < deadline:
        start = time.perf_counter()
        assert grid.update_progress(board) is board
        assert time.perf_counter() - start < 0.5  # never waits on the board's answer
        time.sleep(0.1)
    assert progress.epochs == {"a": 1}
    assert "progress actor lost" not in out.getvalue()
    ray.kill(board)


@ray.remote(num_cpus=0)
class CountingBoard:
    """A board that counts how often the driver asks it."""

    def __init__(self) -> None:
        self.asked = 0

    def changes(self):
        self.asked += 1
        return ({"a": time.time()}, {"a": self.asked}) if self.asked == 1 else ({}, {})

    def count(self) -> int:
        return self.asked


def test_the_board_is_asked_by_the_clock_not_once_per_landing(local_ray):
    """The driver calls update_progress after every landing: 10,000 short runs would have been
    10,000 actor calls (0.5 ms of driver CPU each); asking every POLL_EVERY s bounds them by
    the wall time."""
    local_ray(num_cpus=1)
    board = CountingBoard.remote()
    progress = GridProgress({"a": ("exp: seed=0", 2, 1.0)}, io.StringIO())
    grid, calls = Dispatch(None, None, 0, progress), 0
    start = time.monotonic()
    while time.monotonic() - start < 1.0 or "a" not in progress.started:
        assert grid.update_progress(board) is board
        calls += 1
        time.sleep(0.001)
    seconds = time.monotonic() - start
    asked = ray.get(board.count.remote())
    assert calls > 20 and asked <= seconds / POLL_EVERY + 2, (calls, asked, seconds)
    assert progress.epochs == {"a": 1}  # what it was told still arrives
    ray.kill(board)


class Terminal(io.StringIO):
    """A terminal to rich: the live display draws here as on a screen."""

    def isatty(self) -> bool:
        return True


def _landing_seconds(in_flight: int, landings: int = 10, repeats: int = 4) -> float:
    """Seconds the live display takes per finished run (printed above it, then the driver's
    update with the next run started), `in_flight` runs training throughout; the best of a
    few repeats."""
    total = in_flight + landings * repeats
    runs = {f"run{i:05d}": (f"exp: lr=0.{i:05d} seed=0", 20, 10.0) for i in range(total)}
    progress = GridProgress(runs, Terminal())
    assert progress.live is not None
    try:
        ids = list(runs)
        progress.update({r: time.time() for r in ids[:in_flight]}, {r: 3 for r in ids[:in_flight]})
        best, landed = float("inf"), 0
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(landings):
                progress.finished(ids[landed], "test_acc 0.8  10s  cpu")
                progress.update({ids[in_flight + landed]: time.time()}, {})
                landed += 1
            best = min(best, (time.perf_counter() - start) / landings)
        assert progress.counts()["running"] == in_flight and len(progress.done) == landed
        return best
    finally:
        progress.close()


def test_the_live_display_costs_the_same_per_landing_at_16_and_1000_runs_in_flight():
    small, large = _landing_seconds(16), _landing_seconds(1000)
    print(f"display: {small * 1e3:.2f} ms a landing at 16 runs in flight, "
          f"{large * 1e3:.2f} ms at 1,000")  # fmt: skip
    assert large < 2.5 * small + 1e-3, (small, large)
