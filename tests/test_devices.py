"""Where runs trained: each run's metadata records its device and what shared its process;
`plan` and the report list each experiment's devices, and the report warns when an experiment's
arms mix CPU and GPU runs. Fixtures are real tiny trainings written by the project's own writer;
a GPU copy is the same run written with the device fields a GPU run records."""

import dataclasses
from pathlib import Path

import pytest

from fmnist_ray.console import plan_overview, run_table
from fmnist_ray.planning.plan import make_plan
from fmnist_ray.reporting import make_report
from fmnist_ray.spec.grid import load_experiment
from fmnist_ray.store.devices import device_label, sharing
from fmnist_ray.store.results import (
    find_run_files,
    history_table,
    read_metadata,
    run_metadata,
    write_run,
)
from fmnist_ray.training.train import train_run

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = """description = "devices"
seeds = [0, 1]
[base]
model = "fc"
epochs = 1
[grid]
optimizer = ["adam", "sgd"]
"""
GPU = {"device": "cuda:0", "device_name": "NVIDIA H200", "training_step": "cuda_graph"}


@pytest.fixture(scope="module")
def trained(small):
    """The experiment's 4 runs, trained for real on the CPU: (experiment, {run id: (config, result)})."""
    folder = Path(__file__).parent  # any path: only the file's name (the experiment) matters
    exp = load_experiment(folder / "devices.toml", text=EXPERIMENT)
    data = small.subset(500, 100)
    return exp, {cfg.run_id: (cfg, train_run(cfg, data, "cpu")) for cfg in exp.runs}


def write_results(root: Path, trained, on_gpu) -> Path:
    """The runs under root/devices/, those with optimizer `on_gpu` written as GPU runs."""
    exp, results = trained
    folder = root / exp.name
    folder.mkdir(parents=True)
    (folder / "experiment.toml").write_text(EXPERIMENT)
    for cfg, result in results.values():
        if cfg.optimizer == on_gpu:
            result = dataclasses.replace(result, metadata=result.metadata | GPU)
        meta = run_metadata(result.metadata, "2026-01-01T00:00:00.000+00:00", None)
        write_run(folder, history_table(cfg, result.history, result.status, exp.name, meta))
    return folder


def test_metadata_says_how_many_runs_shared_its_process(tmp_path, trained):
    folder = write_results(tmp_path, trained, on_gpu=None)
    metas = [read_metadata(path) for path in find_run_files([folder])]
    assert len(metas) == 4
    assert {sharing(meta) for meta in metas} == {(1, 0, None, None, False)}
    assert {device_label(meta) for meta in metas} == {"cpu"}


def test_a_gpu_runs_label_says_how_it_had_its_gpu():
    gpu = {"device": "cuda:0", "device_name": "NVIDIA H200"}
    assert device_label(gpu) == "NVIDIA H200"  # written before runs_on_gpu was recorded
    assert device_label(gpu | {"runs_on_gpu": 1, "gpu_share": 1.0}) == "NVIDIA H200 (alone)"
    assert device_label(gpu | {"runs_on_gpu": 4, "gpu_share": 0.25}) == "NVIDIA H200 (4 at once)"
    retried = gpu | {"runs_on_gpu": 1, "gpu_share": 1.0, "retried_alone": True}
    assert device_label(retried) == "NVIDIA H200 (retried alone)"


def test_committed_results_without_the_new_keys_read_as_unknown():
    (path, *_) = find_run_files([REPO / "results" / "pooling"])
    meta = read_metadata(path)
    assert "runs_at_once" not in meta
    assert sharing(meta) == (None,) * 5
    assert device_label(meta) == "cpu"
    assert device_label({}) == "unknown"


def test_the_report_warns_when_arms_mix_cpu_and_gpu_runs(tmp_path, trained):
    mixed = make_report([write_results(tmp_path / "mixed", trained, "sgd")], tmp_path / "m")
    summary = mixed.summaries["devices"][0].read_text()
    index = mixed.index_md.read_text()
    for page in (summary, index):
        assert "Warning: CPU and GPU runs compared" in page
        assert "NVIDIA H200: 2 · cpu: 2" in page
        assert "up to 1.4 pp per seed" in page
    assert "- **devices**: NVIDIA H200: 2 · cpu: 2" in summary
    (printed,) = [note for note in mixed.notes if "mix CPU and GPU" in note]
    assert printed.startswith("warning: devices: its arms mix CPU and GPU runs")

    alike = make_report([write_results(tmp_path / "cpu", trained, None)], tmp_path / "c")
    summary = alike.summaries["devices"][0].read_text()
    assert "- **devices**: cpu: 4" in summary
    assert "Warning" not in summary
    assert not [note for note in alike.notes if "mix CPU and GPU" in note]


def test_plan_lists_the_devices_of_each_experiments_runs(tmp_path, trained):
    exp, _ = trained
    write_results(tmp_path, trained, "sgd")
    plan = make_plan([exp], tmp_path)
    overview = plan_overview(plan, slots=1)
    header, _, row = overview.splitlines()[:3]
    assert "ran on" in header
    assert "NVIDIA H200: 2 · cpu: 2" in row
    assert "warning: devices: its arms mix CPU and GPU runs" in overview
    assert "done runs ran on: NVIDIA H200: 2 · cpu: 2" in run_table(plan, exp)
    fresh = make_plan([exp], tmp_path / "empty")
    assert "warning" not in plan_overview(fresh, slots=1)
    assert "done runs ran on: -" in run_table(fresh, exp)
