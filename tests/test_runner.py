"""The grid runner on real Ray: fractional GPU packing, resume, failure isolation, a two-node
cluster joined through --address, and bad experiment files that start nothing."""

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import ray
from helpers import (
    cli,
    descendants,
    experiment_file,
    kill_all,
    no_ray_connected,
    start_cli,
    still_running,
    train_grid,
    wait_for,
)
from ray.cluster_utils import Cluster
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from fmnist_ray.planning.cost import most_at_once
from fmnist_ray.planning.plan import make_plan
from fmnist_ray.runner.driver import resolve_resources, run_grid
from fmnist_ray.spec.config import Resources, RunConfig
from fmnist_ray.spec.grid import load_experiment, load_experiments
from fmnist_ray.store.results import (
    read_failures,
    read_metadata,
    read_run,
    run_path,
    run_span,
)
from fmnist_ray.store.tree import done_run_ids, read_results
from fmnist_ray.training.train import train_run


def experiment(tmp_path, grid="", base="epochs = 1", seeds=(0, 1), name="exp"):
    return load_experiment(experiment_file(tmp_path, base, seeds, grid, name))


def intervals(folder):
    runs = []
    for path in sorted((folder / "runs").glob("*.parquet")):
        meta = read_metadata(path)
        runs.append((run_span(meta), meta))
    return runs


@pytest.mark.slow
def test_fractional_gpus_pack_two_runs_per_gpu(tmp_path, local_ray, fmnist):
    local_ray(num_cpus=4, num_gpus=2)  # logical GPUs: Ray schedules them, training uses the CPU
    exp = experiment(tmp_path, grid="lr = [0.001, 0.002, 0.003, 0.004]")
    outcome = train_grid([exp], fmnist.subset(6000, 1000), tmp_path / "results",
                         resources=dict(gpus=0.5, cpus=1), stream=io.StringIO())  # fmt: skip
    assert outcome.exit_code == 0
    assert len(outcome.trained) == 8
    runs = intervals(tmp_path / "results" / "exp")
    assert len(runs) == 8
    for _, meta in runs:
        assert len(meta["gpu_ids"]) == 1
        # What the run saw is what Ray gave it.
        assert meta["cuda_visible_devices"] == meta["gpu_ids"][0]
        assert meta["device"] == "cpu"
        assert meta["torch_threads"] == 1
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
    assert len(first.trained) == 3
    assert first.reused == ()
    folder = results / exp.name
    assert (folder / "experiment.toml").read_text() == exp.path.read_text()
    assert (folder / "environment.json").exists()
    kept = {p: p.stat().st_mtime_ns for p in (folder / "runs").glob("*.parquet")}
    victim = Path(run_path(folder, exp.runs[1].run_id).path)
    victim.unlink()
    second = train_grid([exp], small, results, resources=dict(cpus=1), stream=io.StringIO())
    assert [item.run_id for item in second.trained] == [exp.runs[1].run_id]
    assert len(second.reused) == 2
    assert victim.exists()
    for path, mtime in kept.items():
        if path != victim:
            assert path.stat().st_mtime_ns == mtime
    third = train_grid([exp], small, results, resources=dict(cpus=1), stream=io.StringIO())
    assert third.trained == ()
    assert len(third.reused) == 3
    forced = train_grid(
        [exp], small, results, resources=dict(cpus=1), force=True, stream=io.StringIO()
    )
    assert len(forced.trained) == 3
    table = read_results([results])
    assert table.num_rows == 3
    assert set(table.column("run_id").to_pylist()) == done_run_ids(folder)


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
    assert sorted(item.config.seed for item in outcome.trained) == [0, 3]
    failures = {f["config"]["seed"]: f for f in read_failures(tmp_path / "r" / "exp")}
    assert set(failures) == {1, 2}
    assert "injected failure for seed 1" in failures[1]["error"]
    assert 'raise RuntimeError("injected failure for seed 1")' in failures[1]["error"]  # traceback
    assert "Worker" in failures[2]["error"] or "died" in failures[2]["error"]
    assert "FAILED" in out.getvalue()
    # Fixed and run again: only the failed runs train, and their failure records go away.
    again = train_grid([exp], small, tmp_path / "r", resources=dict(cpus=1), stream=io.StringIO())
    assert sorted(item.config.seed for item in again.trained) == [1, 2]
    assert read_failures(tmp_path / "r" / "exp") == []
    assert again.exit_code == 0


# sitecustomize of the test's second node: fmnist_ray importable only from where Ray unpacks
# what `run --address` ships (runtime_env py_modules), and no dataset file readable.
BARE_NODE = """
import builtins, importlib.machinery, io, os, sys

HIDDEN = os.environ["TEST_HIDDEN_DATA"]


class OnlyShippedCode:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name != "fmnist_ray":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or "runtime_resources" not in str(spec.origin):
            raise ImportError(f"fmnist_ray is not installed on this node (found {spec})")
        return spec


def refuse_data(path):
    if isinstance(path, (str, bytes, os.PathLike)) and os.path.realpath(
            os.fsdecode(path)).startswith(HIDDEN):
        raise PermissionError(f"this node has no dataset: {path}")


real_open, real_os_open = builtins.open, os.open


def guarded_open(file, *args, **kwargs):
    refuse_data(file)
    return real_open(file, *args, **kwargs)


def guarded_os_open(path, *args, **kwargs):
    refuse_data(path)
    return real_os_open(path, *args, **kwargs)


sys.meta_path.insert(0, OnlyShippedCode)
builtins.open = io.open = guarded_open
os.open = guarded_os_open
"""


def start_bare_node(address: str, tmp_path: Path, data_dir) -> subprocess.Popen:
    """`ray start --address` for a node without the project (not on PYTHONPATH, not the
    editable install, not its working directory) and without the dataset."""
    site, cwd = tmp_path / "bare-site", tmp_path / "bare-cwd"
    site.mkdir()
    cwd.mkdir()
    (site / "sitecustomize.py").write_text(BARE_NODE)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FMNIST_DATA_DIR")}
    env |= {"PYTHONPATH": str(site), "TEST_HIDDEN_DATA": str(Path(data_dir).resolve())}
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "ray"), "start", "--address", address, "--num-cpus",
         "1", "--block", "--disable-usage-stats"],
        env=env, cwd=cwd, start_new_session=True, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def what_a_node_lacks(node_id: str, data_dir) -> tuple[str, str]:
    """On `node_id`: what importing fmnist_ray and opening a dataset file raise."""

    def probe(data_file):
        outcomes = []
        for attempt in (lambda: __import__("fmnist_ray"), lambda: open(data_file, "rb")):
            try:
                attempt()
                outcomes.append("works")
            except Exception as error:
                outcomes.append(type(error).__name__)
        return tuple(outcomes)

    strategy = NodeAffinitySchedulingStrategy(node_id, soft=False)
    data_file = next(Path(data_dir).resolve().rglob("train-labels-idx1-ubyte*"))
    return ray.get(ray.remote(probe).options(scheduling_strategy=strategy).remote(str(data_file)))


@pytest.mark.slow
def test_two_node_cluster_through_address(tmp_path, data_dir):
    """A second node with neither this project's code nor the dataset trains its share: only
    the code `run --address` ships and the data in the object store can make that work."""
    no_ray_connected()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    bare = start_bare_node(cluster.address, tmp_path, data_dir)
    try:
        ray.init(address=cluster.address, logging_level="ERROR")
        wait_for(lambda: len([n for n in ray.nodes() if n["Alive"]]) == 2, seconds=120)
        [bare_id] = [n["NodeID"] for n in ray.nodes()
                     if n["Alive"] and n["NodeID"] != cluster.head_node.node_id]  # fmt: skip
        assert what_a_node_lacks(bare_id, data_dir) == ("ImportError", "PermissionError")
        ray.shutdown()
        exp = experiment(tmp_path, base='model = "fc"\nepochs = 1', seeds=(0, 1, 2, 3))
        results = tmp_path / "results"
        # The driver's working directory goes on the workers' sys.path: not the checkout.
        done = cli("run", exp.path, "--address", cluster.address, "--data-dir", data_dir,
                   "--results", results, cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        runs = intervals(results / "exp")
        assert len(runs) == 4
        assert {meta["ray_node_id"] for _, meta in runs} == {cluster.head_node.node_id, bare_id}
    finally:
        ray.shutdown()
        below = descendants(bare.pid)
        os.killpg(bare.pid, signal.SIGTERM)
        bare.wait(timeout=60)
        kill_all(still_running(below))
        cluster.shutdown()


@pytest.mark.slow
def test_a_diverged_run_is_kept_counted_done_and_reported(tmp_path, data_dir):
    """End to end: a run whose loss turns non-finite is written with status diverged, exits 0,
    counts as done (never retrained), and the report lists it apart from the statistics."""
    exp = experiment(tmp_path, base='model = "fc"\nepochs = 3\noptimizer = "sgd"\nlr = 1e12',
                     seeds=(0,), name="div")  # fmt: skip
    results = tmp_path / "results"
    args = ["run", exp.path, "--data-dir", data_dir, "--results", results, "--num-cpus", "1"]
    first = cli(*args)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "1 trained, 0 already done, 0 failed" in first.stdout
    assert "diverged" in first.stdout
    [path] = (results / "div" / "runs").glob("*.parquet")
    table = read_run(path)
    assert set(table.column("status").to_pylist()) == {"diverged"}
    assert table.num_rows < 3
    again = cli(*args)
    assert again.returncode == 0
    assert "nothing to train: all 1 runs of div are done" in again.stdout
    assert "1 runs: 1 done, 0 pending" in cli("plan", exp.path, "--results", results).stdout
    report = cli("report", results / "div", "--out", tmp_path / "report")
    assert report.returncode == 0, report.stderr
    summary = (tmp_path / "report" / "div" / "summary.md").read_text()
    assert path.stem in summary
    assert "diverged" in summary


def test_the_cli_exits_1_when_a_run_failed(tmp_path, data_dir):
    """With --retries 0, a run whose worker is SIGKILLed fails: recorded, exit code 1."""
    exp = experiment(tmp_path, base='model = "fc"\nepochs = 1', seeds=(0,))
    results = tmp_path / "results"
    driver = start_cli("run", exp.path, "--data-dir", data_dir, "--results", results,
                       "--num-cpus", "1", "--retries", "0")  # fmt: skip
    try:
        wait_for(lambda: training_workers(driver.pid) or driver.poll() is not None)
        kill_all(training_workers(driver.pid))
        out, err = driver.communicate(timeout=300)
    finally:
        driver.kill()
    assert driver.returncode == 1, out + err
    assert "0 trained, 0 already done, 1 failed" in out
    assert "failed: " in err
    [record] = read_failures(results / "exp")
    assert record["attempts"] == 1
    assert "Traceback" not in err


def training_workers(driver: int) -> list[int]:
    """The driver's Ray workers that are trainers (long-lived actors that train runs)."""
    found = []
    for pid in descendants(driver):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::Trainer"):
                found.append(pid)
        except OSError:
            pass
    return found


@pytest.mark.parametrize("gpus, expected", [(0, 0.0), (2, 0.25)])
def test_gpu_share_defaults_to_a_quarter_when_the_cluster_has_gpus(local_ray, gpus, expected):
    local_ray(num_cpus=1, num_gpus=gpus)  # logical GPUs are enough for Ray's bookkeeping
    assert resolve_resources(Resources(cpus=1)) == Resources(gpus=expected, cpus=1)


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
    assert not (tmp_path / "results").exists()
    assert done.stdout == ""


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
    assert outcome.exit_code == 0
    assert len(outcome.trained) == 3  # 4 planned, 3 unique
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
    assert again.trained == ()
    assert run_path(results / "b", shared).exists()


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
