"""The long-lived trainer on real Ray: several runs in one process train exactly what solo runs
train, a run that raises or diverges there leaves the others whole, and a trainer killed by pid
mid-grid has its run retried in a fresh one, every run landing once."""

import io
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import ray
import torch
from conftest import wait_for
from pin_histories import KEYS

from fmnist_ray.planning.plan import make_plan
from fmnist_ray.runner.driver import run_grid
from fmnist_ray.spec.config import RunConfig
from fmnist_ray.spec.grid import load_experiments
from fmnist_ray.store.results import read_failures, read_metadata, read_run
from fmnist_ray.training.train import train_run

# Trainers call this file's functions; Ray's workers cannot import a test file.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

MIXED = """seeds = [0]
[base]
epochs = 2
[[variants]]
model = "lenet5"
[[variants]]
model = "fc"
optimizer = "sgd"
momentum = 0.9
[[variants]]
model = "lenet5"
scheduler = "steplr"
step_size = 5
gamma = 0.5
"""


def landed(folder: Path) -> dict[str, tuple[list[dict], dict]]:
    """run id -> (its rows, its metadata), for every result file in `folder`."""
    return {
        path.stem: (read_run(path).to_pylist(), read_metadata(path))
        for path in sorted((folder / "runs").glob("*.parquet"))
    }


def exactly(rows: list[dict]) -> str:
    """The rows' pinned values as text: equal text, equal bits (NaN included, as json writes it)."""
    return json.dumps([{k: row[k] for k in KEYS} for row in rows])


def solo(cfg: RunConfig, data) -> str:
    """The run trained alone in this process, on one thread as a 1-CPU trainer is."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return exactly(train_run(cfg, data, "cpu").history)
    finally:
        torch.set_num_threads(threads)


def test_a_trainer_holding_several_runs_matches_solo_runs_exactly(tmp_path, local_ray, small):
    local_ray(num_cpus=1)  # one slot: one trainer trains all three, one after another
    data = small.subset(1000, 200)
    path = tmp_path / "mixed.toml"
    path.write_text(MIXED)
    plan = make_plan(load_experiments([path]), tmp_path / "r")
    outcome = run_grid(plan, data, stream=io.StringIO())
    assert outcome.exit_code == 0 and len(outcome.trained) == 3
    runs = landed(tmp_path / "r" / "mixed")
    assert len({meta["trainer_pid"] for _, meta in runs.values()}) == 1
    assert sorted(meta["trainer_runs_before"] for _, meta in runs.values()) == [0, 1, 2]
    for run in plan.runs:
        rows, _ = runs[run.run_id]
        assert exactly(rows) == solo(run.config, data), run.config.describe()


def noting_where_the_images_live(note: Path):
    """A train function that first notes the mapping (/proc/self/maps) holding this trainer's
    train images, in `note`.<pid>."""

    def train(cfg, data, device, on_epoch=None):
        address = data.train_x.data_ptr()
        for line in Path("/proc/self/maps").read_text().splitlines():
            span, perms, _offset, _dev, inode, *path = line.split()
            low, high = (int(part, 16) for part in span.split("-"))
            if low <= address < high:
                found = {"perms": perms, "inode": inode, "path": " ".join(path)}
                note.with_suffix(f".{os.getpid()}").write_text(json.dumps(found))
        return train_run(cfg, data, device, on_epoch)

    return train


def test_cpu_trainers_read_the_images_in_place_from_one_shared_copy(tmp_path, local_ray, small):
    """Two CPU trainers on one node: each one's train images lie in the same shared mapping
    (Ray's object store), not in a private float32 copy per trainer."""
    local_ray(num_cpus=2)
    path = tmp_path / "two.toml"
    path.write_text('seeds = [0, 1]\n[base]\nmodel = "fc"\nepochs = 1\n')
    plan = make_plan(load_experiments([path]), tmp_path / "r")
    train = noting_where_the_images_live(tmp_path / "maps")
    outcome = run_grid(plan, small, train_fn=train, stream=io.StringIO())
    assert outcome.exit_code == 0
    notes = [json.loads(p.read_text()) for p in tmp_path.glob("maps.*")]
    print(notes)
    assert len(notes) == 2  # two trainers
    assert all(note["perms"][3] == "s" for note in notes)  # shared, not private
    assert notes[0]["inode"] == notes[1]["inode"] != "0"


def raises_for_seed_1(cfg, data, device, on_epoch=None):
    if cfg.seed == 1:
        train_run(cfg.model_copy(update={"epochs": 1}), data, device)  # dirty state, then fail
        raise ValueError("injected failure for seed 1")
    return train_run(cfg, data, device, on_epoch)


def test_a_run_failing_or_diverging_in_a_shared_trainer_leaves_the_others_whole(
    tmp_path, local_ray, small
):
    local_ray(num_cpus=1)
    data = small.subset(1000, 200)
    path = tmp_path / "shared.toml"
    path.write_text('seeds = [0, 1, 2]\n[base]\nmodel = "fc"\nepochs = 2\n'
                    '[[variants]]\n[[variants]]\noptimizer = "sgd"\nlr = 1e12\n')  # fmt: skip
    plan = make_plan(load_experiments([path]), tmp_path / "r")
    outcome = run_grid(plan, data, train_fn=raises_for_seed_1, stream=io.StringIO())
    failures = read_failures(tmp_path / "r" / "shared")
    assert outcome.exit_code == 1 and len(outcome.trained) == 4
    assert sorted(f["config"]["seed"] for f in failures) == [1, 1]
    assert all(f["attempts"] == 1 and "injected failure for seed 1" in f["error"] for f in failures)
    runs = landed(tmp_path / "r" / "shared")
    assert len({meta["trainer_pid"] for _, meta in runs.values()}) == 1  # it survived the raises
    assert {meta["trainer_runs_before"] for _, meta in runs.values()} < set(range(6))
    statuses = []
    for run in plan.runs:
        if run.config.seed != 1:
            rows, _ = runs[run.run_id]
            statuses.append((run.config.lr, {row["status"] for row in rows}))
            assert exactly(rows) == solo(run.config, data), run.config.describe()
    assert sorted(statuses) == [(0.001, {"ok"})] * 2 + [(1e12, {"diverged"})] * 2


def logs_and_lingers(log: Path):
    """A train_fn that logs each start and end (with its pid) and lingers a second in between,
    so the test can kill its trainer while it holds a run."""

    def train(cfg, data, device, on_epoch=None):
        def note(what):
            with open(log, "a") as out:
                out.write(json.dumps({"what": what, "run": cfg.run_id, "pid": os.getpid()}) + "\n")

        note("start")
        time.sleep(1.0)
        outcome = train_run(cfg, data, device, on_epoch)
        note("end")
        return outcome

    return train


def events(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_a_trainer_killed_mid_grid_has_its_run_retried_and_every_run_lands_once(
    tmp_path, local_ray, small
):
    local_ray(num_cpus=1)
    log = tmp_path / "events"
    path = tmp_path / "exp.toml"
    path.write_text('seeds = [0, 1, 2, 3]\n[base]\nmodel = "fc"\nepochs = 1\n')
    plan = make_plan(load_experiments([path]), tmp_path / "r")
    killed: list[dict] = []

    def kill_during_second_run():
        wait_for(lambda: len([e for e in events(log) if e["what"] == "start"]) >= 2, 120)
        killed.append(events(log)[-1])  # the second run, in the trainer that trained the first
        os.kill(killed[0]["pid"], signal.SIGKILL)

    killer = threading.Thread(target=kill_during_second_run)
    killer.start()
    outcome = run_grid(plan, small.subset(1000, 200), train_fn=logs_and_lingers(log),
                       stream=io.StringIO(), max_retries=1)  # fmt: skip
    killer.join()
    [victim] = killed
    assert outcome.exit_code == 0 and len(outcome.trained) == 4, outcome.failed
    seen = events(log)
    assert sorted(e["run"] for e in seen if e["what"] == "end") == sorted(
        run.run_id for run in plan.runs
    )
    assert [e["run"] for e in seen if e["what"] == "start"].count(victim["run"]) == 2
    runs = landed(tmp_path / "r" / "exp")
    assert (
        sorted(runs) == sorted(run.run_id for run in plan.runs)
        and read_failures(tmp_path / "r" / "exp") == []
    )
    assert runs[victim["run"]][1]["trainer_pid"] != victim["pid"]  # trained by the new trainer
    assert runs[victim["run"]][1]["trainer_runs_before"] == 0
