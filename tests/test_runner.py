"""The grid runner on real Ray: fractional GPU packing, resume, failure isolation, a two-node
cluster joined through --address, and bad experiment files that start nothing."""

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import ray
from conftest import train_grid
from ray.cluster_utils import Cluster

from fmnist_ray.config import RunConfig
from fmnist_ray.cost import most_at_once
from fmnist_ray.grid import load_experiment, load_experiments
from fmnist_ray.plan import make_plan
from fmnist_ray.results import (
    done_run_ids,
    read_failures,
    read_metadata,
    read_results,
    read_run,
    run_path,
    run_span,
)
from fmnist_ray.runner import run_grid
from fmnist_ray.train import train_run


@pytest.fixture
def local_ray():
    """Start a local Ray with the given logical resources; always shut it down."""
    yield lambda **resources: ray.init(
        address="local", include_dashboard=False, logging_level="ERROR", **resources
    )
    ray.shutdown()


def experiment(tmp_path, grid="", base="epochs = 1", seeds=(0, 1), name="exp"):
    path = tmp_path / f"{name}.toml"
    path.write_text(f"seeds = {list(seeds)}\n[base]\n{base}\n[grid]\n{grid}\n")
    return load_experiment(path)


def intervals(folder):
    runs = []
    for path in sorted((folder / "runs").glob("*.parquet")):
        meta = read_metadata(path)
        runs.append((run_span(meta), meta))
    return runs


def test_fractional_gpus_pack_two_runs_per_gpu(tmp_path, local_ray, fmnist):
    local_ray(num_cpus=4, num_gpus=2)  # logical GPUs: Ray schedules them, training uses the CPU
    exp = experiment(tmp_path, grid="lr = [0.001, 0.002, 0.003, 0.004]")
    outcome = train_grid([exp], fmnist.subset(6000, 1000), tmp_path / "results",
                         resources=dict(gpus=0.5, cpus=1), stream=io.StringIO())  # fmt: skip
    assert outcome.exit_code == 0 and len(outcome.finished) == 8
    runs = intervals(tmp_path / "results" / "exp")
    assert len(runs) == 8
    for _, meta in runs:
        assert len(meta["gpu_ids"]) == 1
        # What the run saw is what Ray gave it.
        assert meta["cuda_visible_devices"] == meta["gpu_ids"][0]
        assert meta["device"] == "cpu" and meta["torch_threads"] == 1
    assert most_at_once([span for span, _ in runs]) <= 4
    by_gpu = {}
    for span, meta in runs:
        by_gpu.setdefault(meta["gpu_ids"][0], []).append(span)
    assert set(by_gpu) == {"0", "1"}
    assert all(most_at_once(spans) <= 2 for spans in by_gpu.values())
    assert most_at_once([span for span, _ in runs]) >= 2  # it did run in parallel


def test_resume_trains_only_what_is_missing(tmp_path, local_ray, small):
    local_ray(num_cpus=2)
    exp = experiment(tmp_path, base='model = "fc"\nepochs = 1', seeds=(0, 1, 2))
    results = tmp_path / "results"
    first = train_grid([exp], small, results, resources=dict(cpus=1), stream=io.StringIO())
    assert len(first.finished) == 3 and first.skipped == 0
    folder = results / exp.name
    assert (folder / "experiment.toml").read_text() == exp.path.read_text()
    assert (folder / "environment.json").exists()
    kept = {p: p.stat().st_mtime_ns for p in (folder / "runs").glob("*.parquet")}
    victim = Path(run_path(folder, exp.runs[1].run_id).path)
    victim.unlink()
    second = train_grid([exp], small, results, resources=dict(cpus=1), stream=io.StringIO())
    assert [item.run.config.run_id for item in second.finished] == [exp.runs[1].run_id]
    assert second.skipped == 2 and victim.exists()
    for path, mtime in kept.items():
        if path != victim:
            assert path.stat().st_mtime_ns == mtime
    third = train_grid([exp], small, results, resources=dict(cpus=1), stream=io.StringIO())
    assert third.finished == [] and third.skipped == 3
    forced = train_grid(
        [exp], small, results, resources=dict(cpus=1), force=True, stream=io.StringIO()
    )
    assert len(forced.finished) == 3
    table = read_results([results])
    assert table.num_rows == 3 and set(table.column("run_id").to_pylist()) == done_run_ids(folder)


def test_a_failing_run_never_stops_the_others(tmp_path, local_ray, small):
    local_ray(num_cpus=2)
    exp = experiment(tmp_path, base='model = "fc"\nepochs = 1', seeds=(0, 1, 2, 3))

    def flaky(cfg, data, device, on_epoch=None):
        if cfg.seed == 1:
            raise RuntimeError("injected failure for seed 1")
        if cfg.seed == 2:
            os._exit(3)  # the worker process dies: Ray reports it, we record it
        return train_run(cfg, data, device, on_epoch)

    out = io.StringIO()
    outcome = train_grid([exp], small, tmp_path / "r", resources=dict(cpus=1), train_fn=flaky,
                       stream=out, max_retries=0)  # fmt: skip
    assert outcome.exit_code == 1
    assert sorted(item.run.config.seed for item in outcome.finished) == [0, 3]
    failures = {f["config"]["seed"]: f for f in read_failures(tmp_path / "r" / "exp")}
    assert set(failures) == {1, 2}
    assert "injected failure for seed 1" in failures[1]["error"]
    assert 'raise RuntimeError("injected failure for seed 1")' in failures[1]["error"]  # traceback
    assert "Worker" in failures[2]["error"] or "died" in failures[2]["error"]
    assert "FAILED" in out.getvalue()
    # Fixed and run again: only the failed runs train, and their failure records go away.
    again = train_grid([exp], small, tmp_path / "r", resources=dict(cpus=1), stream=io.StringIO())
    assert sorted(item.run.config.seed for item in again.finished) == [1, 2]
    assert read_failures(tmp_path / "r" / "exp") == [] and again.exit_code == 0


def cli(*args, **kwargs):
    env = os.environ | {"RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.run([sys.executable, "-m", "fmnist_ray", *map(str, args)],
                          capture_output=True, text=True, timeout=600, env=env, **kwargs)  # fmt: skip


def test_two_node_cluster_through_address(tmp_path, data_dir):
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        exp = experiment(tmp_path, base='model = "fc"\nepochs = 1', seeds=(0, 1, 2, 3))
        results = tmp_path / "results"
        done = cli("run", exp.path, "--address", cluster.address, "--data-dir", data_dir,
                   "--results", results, cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        runs = intervals(results / "exp")
        assert len(runs) == 4
        nodes = {meta["ray_node_id"] for _, meta in runs}
        assert nodes == {node.node_id for node in cluster.list_all_nodes()}
    finally:
        cluster.shutdown()


def test_cli_run_then_rerun_trains_nothing(tmp_path, data_dir):
    exp = experiment(tmp_path, base='model = "fc"\nepochs = 1', seeds=(0, 1))
    results = tmp_path / "results"
    args = ["run", exp.path, "--data-dir", data_dir, "--results", results, "--num-cpus", "2"]
    first = cli(*args)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "2 trained, 0 already done, 0 failed" in first.stdout
    second = cli(*args)
    assert second.returncode == 0
    assert "nothing to train: all 2 runs of exp are done" in second.stdout
    plan = cli("plan", exp.path, "--results", results)
    assert "2 runs: 2 done, 0 pending, 0 failed" in plan.stdout


def test_invalid_experiment_starts_nothing_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[base]\nepochs = 0\n[grid]\nactivation = ["relu", "sigmoid"]\n')
    done = cli("run", bad, "--results", tmp_path / "results")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines == [
        f"error: {bad}: base.epochs: 0 is not allowed: Input should be greater than or equal to 1 (allowed: an integer >= 1)",
        f"error: {bad}: grid.activation: 'sigmoid' is not allowed: Input should be 'tanh', 'relu' or 'leaky_relu'",
    ]
    assert not (tmp_path / "results").exists() and done.stdout == ""


def test_resources_that_fit_no_node_are_refused(tmp_path, data_dir):
    exp = experiment(tmp_path, base='model = "fc"\nepochs = 1', seeds=(0,))
    done = cli("run", exp.path, "--data-dir", data_dir, "--results", tmp_path / "r",
               "--num-cpus", "1", "--gpus-per-run", "0.5")  # fmt: skip
    assert done.returncode == 2
    assert "gpus per run 0.5: no node of this cluster has that many GPUs" in done.stderr


def test_a_config_shared_by_two_files_trains_once_and_lands_in_both(tmp_path, local_ray, small):
    local_ray(num_cpus=2)
    a = tmp_path / "a.toml"
    a.write_text('seeds = [0, 1]\n[base]\nmodel = "fc"\nepochs = 1\n')
    b = tmp_path / "b.toml"
    b.write_text('seeds = [0]\n[base]\nmodel = "fc"\nepochs = 1\n[grid]\nlr = [0.001, 0.002]\n')
    results = tmp_path / "results"
    plan = make_plan(load_experiments([a, b]), results)
    outcome = run_grid(plan, small, stream=io.StringIO())
    assert outcome.exit_code == 0 and len(outcome.finished) == 3  # 4 planned, 3 unique
    shared = RunConfig(model="fc", epochs=1).run_id
    copies = [read_run(run_path(results / name, shared)) for name in ("a", "b")]
    assert [set(t.column("experiment").to_pylist()) for t in copies] == [{"a"}, {"b"}]
    assert copies[0].column("test_acc").equals(copies[1].column("test_acc"))  # one training
    assert done_run_ids(results / "a") | done_run_ids(results / "b") == {
        r.run_id for r in plan.runs
    }
    # Resume across experiments: b's copy gone, a's still there -> filed again, nothing trained.
    Path(run_path(results / "b", shared).path).unlink()
    again = train_grid(load_experiments([a, b]), small, results, stream=io.StringIO())
    assert again.finished == [] and run_path(results / "b", shared).exists()


def test_runs_start_longest_first(tmp_path, local_ray, small):
    local_ray(num_cpus=1)  # one slot: runs start exactly in submission order
    path = tmp_path / "mixed.toml"
    path.write_text('seeds = [0]\n[base]\nepochs = 1\n[[variants]]\nmodel = "fc"\n'
                    '[[variants]]\nmodel = "fc"\nbatch_size = 50\n'
                    '[[variants]]\nmodel = "lenet5"\nbatch_size = 20\n')  # fmt: skip
    plan = make_plan(load_experiments([path]), tmp_path / "results")
    run_grid(plan, small.subset(1000, 200), stream=io.StringIO())
    started = sorted((meta["started_at"], meta["config"]["model"], meta["config"]["batch_size"])
                     for _, meta in intervals(tmp_path / "results" / "mixed"))  # fmt: skip
    assert [(model, bs) for _, model, bs in started] == [("lenet5", 20), ("fc", 50), ("fc", 100)]
    assert [run.config.model for run in plan.todo] == ["lenet5", "fc", "fc"]


DRIVER_SCRIPT = """
import io, sys
import ray
from fmnist_ray.data import load_fashion_mnist
from fmnist_ray.grid import load_experiments
from fmnist_ray.plan import make_plan
from fmnist_ray.runner import run_grid
ray.init(address="local", num_cpus=1, include_dashboard=False, logging_level="ERROR")
data = load_fashion_mnist(sys.argv[1], download=False).subset(1000, 200)
outcome = run_grid(make_plan(load_experiments([sys.argv[2]]), sys.argv[3]), data, stream=io.StringIO())
ray.shutdown()
assert outcome.exit_code == 0 and len(outcome.finished) == 1, outcome
print("torch in driver:", "torch" in sys.modules)
"""


def test_the_driver_never_imports_torch(tmp_path, data_dir):
    """Results come back as plain values: a driver that unpickled torch types would load torch
    (seconds and hundreds of MB per driver; inside a Ray Job it crashed)."""
    exp = experiment(tmp_path, base='model = "fc"\nepochs = 1', seeds=(0,))
    done = subprocess.run([sys.executable, "-c", DRIVER_SCRIPT, str(data_dir), str(exp.path),
                           str(tmp_path / "r")], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "torch in driver: False" in done.stdout
