"""Planning many experiment files at once: every problem of every file at once, shared configs
counted once, results found anywhere under the root and filed, and longest-first order."""

import os
from pathlib import Path

import pytest

from fmnist_ray.planning.cost import estimate_seconds, lower_bound, makespan
from fmnist_ray.planning.plan import make_plan, prepare
from fmnist_ray.spec.config import RunConfig
from fmnist_ray.spec.grid import ExperimentError, load_experiments
from fmnist_ray.store.results import history_table, read_metadata, read_run, run_path, write_run

REPO = Path(__file__).resolve().parents[1]


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def fake_result(root: Path, experiment: str, cfg: RunConfig) -> None:
    row = {"epoch": 1, "train_loss": 0.5, "train_acc": 0.8, "test_loss": 0.5, "test_acc": 0.8,
           "last_lr": cfg.lr, "seconds": 1.0, "images_per_s": 1.0}  # fmt: skip
    write_run(root / experiment, history_table(cfg, [row], "ok", experiment, {}))


def test_folder_means_its_files_and_every_problem_of_every_file_is_reported(tmp_path):
    write(tmp_path, "a", "[grid]\nlr = [0]\n")
    write(tmp_path, "b", '[base]\nactivation = "sigmoid"\n')
    write(tmp_path, "c", "[base]\nepochs = 1\n")
    with pytest.raises(ExperimentError) as info:
        load_experiments([tmp_path])
    assert len(info.value.problems) == 2
    assert str(tmp_path / "a.toml") in info.value.problems[0]
    assert str(tmp_path / "b.toml") in info.value.problems[1]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ExperimentError, match="has no experiment files"):
        load_experiments([empty, tmp_path / "c.toml"])


def test_the_study_has_fewer_unique_runs_than_planned(tmp_path):
    study = sorted((REPO / "experiments" / "study").glob("*.toml"))
    plan = make_plan(load_experiments(study), tmp_path)
    assert plan.planned == 141
    assert len(plan.runs) == 123  # the base case sits in 7 files: 18 runs train once, not 7 times
    base = next(run for run in plan.runs if run.config == RunConfig(seed=0))
    assert len(base.experiments) == 7


def test_a_result_anywhere_under_the_root_is_filed_not_retrained(tmp_path):
    a = write(tmp_path, "a", "seeds = [0, 1]\n[base]\nepochs = 1\n")
    b = write(tmp_path, "b", "seeds = [0]\n[base]\nepochs = 1\n[grid]\nlr = [0.001, 0.002]\n")
    root = tmp_path / "results"
    shared = RunConfig(epochs=1)
    fake_result(root, "a", shared)
    plan = make_plan(load_experiments([a, b]), root)
    assert plan.planned == 4
    assert len(plan.runs) == 3
    assert {run.run_id for run in plan.todo} == {
        RunConfig(epochs=1, seed=1).run_id,
        RunConfig(epochs=1, lr=0.002).run_id,
    }
    assert prepare(plan) == ["filed 1 existing results into the other experiments that hold them"]
    copy = run_path(root / "b", shared.run_id)
    assert copy.exists()
    assert set(read_run(copy).column("experiment").to_pylist()) == {"b"}
    meta = read_metadata(copy)
    assert meta["experiment"] == "b"
    assert meta["first_filed_in"] == "a"
    again = make_plan(load_experiments([a, b]), root)
    assert again.to_file == []
    assert len(again.todo) == 2


def test_pending_runs_come_longest_first(tmp_path):
    exp = write(tmp_path, "mixed", '[base]\nepochs = 2\nmodel = "fc"\n[[variants]]\n'
                'model = "fc"\n[[variants]]\nmodel = "lenet5"\nbatch_size = 10\n'
                '[[variants]]\nmodel = "lenet5"\n')  # fmt: skip
    plan = make_plan(load_experiments([exp]), tmp_path / "r")
    seconds = [run.seconds for run in plan.todo]
    assert seconds == sorted(seconds, reverse=True)
    assert plan.todo[0].config.batch_size == 10
    assert plan.todo[-1].config.model == "fc"


def test_cost_model_orders_the_study_s_long_runs_first():
    base = estimate_seconds(RunConfig())
    assert estimate_seconds(RunConfig(batch_size=10)) > base
    wide = RunConfig(channels=(32, 64, 256), pooling="max", batchnorm=True, activation="relu")
    assert estimate_seconds(wide) > 4 * base
    assert estimate_seconds(RunConfig(model="fc")) < base
    assert estimate_seconds(RunConfig(epochs=40)) == pytest.approx(2 * base)


def test_makespan_and_its_lower_bound():
    assert makespan([1, 1, 1, 5], 2) == 6  # the long job last waits for a slot
    assert makespan([5, 1, 1, 1], 2) == 5  # longest first: at the bound
    assert lower_bound([5, 1, 1, 1], 2) == 5
    assert lower_bound([2, 2, 2, 2], 2) == 4


def test_plan_prints_the_wall_time_for_the_slots_it_would_get(tmp_path):
    """One slot: the runs back to back; as many slots as runs: the longest run. Without
    --slots, the CPUs here divided by each run's CPUs (here all of them: one slot)."""
    from helpers import cli_here

    from fmnist_ray.runner.progress import clock

    path = write(tmp_path, "mixed", f"seeds = [0]\n[base]\nepochs = 2\n[grid]\nbatch_size = [20, 100, 500]\n"
                 f"[resources]\ncpus = {os.cpu_count()}\n")  # fmt: skip
    seconds = [estimate_seconds(RunConfig(epochs=2, batch_size=b)) for b in (20, 100, 500)]
    expected = {"1": sum(seconds), "3": max(seconds)}
    for slots, wall in expected.items():
        done = cli_here("plan", path, "--results", tmp_path / "r", "--slots", slots)
        assert done.returncode == 0, done.stderr
        assert (
            f"slot{'s' if slots != '1' else ''}, longest first: about {clock(wall)} wall"
            in done.stdout
        )
    default = cli_here("plan", path, "--results", tmp_path / "r")
    assert f"on 1 slot, longest first: about {clock(sum(seconds))} wall" in default.stdout
    assert f"about {sum(seconds) / 3600:.2f} run-hours" in default.stdout


def test_only_this_invocation_s_invalid_files_are_tidied(tmp_path):
    mine = write(tmp_path, "mine", "seeds = [0]\n[base]\nepochs = 1\n")
    root = tmp_path / "results"
    for name in ("mine", "other"):
        (root / name / "runs").mkdir(parents=True)
        (root / name / "runs" / "broken.parquet").write_bytes(b"not parquet")
    plan = make_plan(load_experiments([mine]), root)
    assert [path.parent.parent.name for path, _ in plan.corrupt] == ["mine"]
    [line] = prepare(plan)
    assert line.startswith(f"warning: {root / 'mine' / 'runs' / 'broken.parquet'}: not a readable")
    assert (root / "other" / "runs" / "broken.parquet").exists()
    assert len(list((root / "mine" / "quarantine").iterdir())) == 1


def _label_seconds(tmp_path: Path, lrs: int) -> float:
    """Seconds per label over a grid of `lrs` x 10 batch sizes x 10 seeds (no training)."""
    import time

    from fmnist_ray.planning.plan import label

    folder = tmp_path / f"grid{lrs}"
    folder.mkdir()
    lr = ", ".join(f"{0.001 * (i + 1):.4f}" for i in range(lrs))
    sizes = ", ".join(str(16 * (i + 1)) for i in range(10))
    seeds = list(range(10))
    write(folder, "big", f"seeds = {seeds}\n[base]\nmodel = \"fc\"\nepochs = 1\n"
                         f"[grid]\nlr = [{lr}]\nbatch_size = [{sizes}]\n")  # fmt: skip
    plan = make_plan(load_experiments([folder]), tmp_path / f"results{lrs}")
    assert len(plan.runs) == lrs * 100
    sample = plan.runs[:: len(plan.runs) // 200]
    best = float("inf")
    for _ in range(5):  # the min of a few repeats: robust on a loaded machine
        start = time.perf_counter()
        labels = [label(plan, run) for run in sample]
        best = min(best, (time.perf_counter() - start) / len(sample))
    assert labels[1].startswith("big: ") and {"lr", "batch_size", "seed"} <= {
        part.split("=")[0] for part in labels[1].split(": ")[1].split()
    }
    return best


def test_a_label_costs_the_same_at_1000_and_10000_planned_runs(tmp_path):
    small, large = _label_seconds(tmp_path, 10), _label_seconds(tmp_path, 100)
    print(f"label: {small * 1e6:.1f} us a run at 1,000 runs, {large * 1e6:.1f} us at 10,000")
    assert large < 2 * small + 20e-6, (small, large)
