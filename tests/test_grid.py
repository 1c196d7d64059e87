"""Experiment files: expansion order, dedup, variants, and every problem reported at once."""

from pathlib import Path

import pytest

from fmnist_ray.spec.grid import ExperimentError, load_experiment

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path, text, name="exp.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_grid_times_seeds_in_a_stable_order(tmp_path):
    exp = load_experiment(
        write(
            tmp_path,
            """
seeds = [0, 1]
[base]
epochs = 3
[grid]
lr = [0.001, 0.01]
optimizer = ["adam", "sgd"]
[resources]
gpus = 0.25
""",
        )
    )
    assert exp.name == "exp"
    assert exp.axes == ["lr", "optimizer"]
    got = [(c.lr, c.optimizer, c.seed) for c in exp.runs]
    assert got == [
        (0.001, "adam", 0), (0.001, "adam", 1), (0.001, "sgd", 0), (0.001, "sgd", 1),
        (0.01, "adam", 0), (0.01, "adam", 1), (0.01, "sgd", 0), (0.01, "sgd", 1),
    ]  # fmt: skip
    assert all(c.epochs == 3 for c in exp.runs)
    assert exp.resources.gpus == 0.25
    assert exp.resources.cpus == 1
    assert [c.run_id for c in load_experiment(exp.path).runs] == [c.run_id for c in exp.runs]


def test_variants_are_crossed_with_the_grid_and_duplicates_collapse(tmp_path):
    exp = load_experiment(
        write(
            tmp_path,
            """
[grid]
activation = ["relu", "tanh"]
[[variants]]
pooling = "max"
batchnorm = true
[[variants]]
pooling = "avg"
[[variants]]
pooling = "avg"
batchnorm = false
""",
        )
    )
    # The third variant equals the second (batchnorm false is the default): collapsed.
    assert len(exp.runs) == 4
    assert [(c.pooling, c.batchnorm, c.activation) for c in exp.runs] == [
        ("max", True, "relu"), ("max", True, "tanh"), ("avg", False, "relu"), ("avg", False, "tanh"),
    ]  # fmt: skip
    assert exp.axes == ["activation", "pooling", "batchnorm"]


def test_every_problem_is_reported_at_once(tmp_path):
    path = write(
        tmp_path,
        """
seeds = [0, -1]
colour = "blue"
[base]
epochs = 0
activaton = "relu"
[grid]
lr = [0.001, -0.1]
activation = ["relu", "sigmoid"]
pooling = "max"
[resources]
gpus = -1
""",
    )
    with pytest.raises(ExperimentError) as info:
        load_experiment(path)
    text = "\n".join(info.value.problems)
    for expected in [
        "seeds: [0, -1] is not allowed",
        "colour: unknown top-level key",
        "base.activaton: unknown option",
        "grid.pooling: 'max' is not allowed: a grid entry is a non-empty list",
        "resources.gpus: -1 is not allowed",
    ]:
        assert f"{path}: {expected}" in text, text
    # Values are checked after the structure is right.
    path.write_text(
        '[base]\nepochs = 0\n[grid]\nlr = [0.001, -0.1]\nactivation = ["relu", "sigmoid"]\n'
    )
    with pytest.raises(ExperimentError) as info:
        load_experiment(path)
    assert info.value.problems == [
        f"{path}: base.epochs: 0 is not allowed: Input should be greater than or equal to 1 "
        "(allowed: an integer >= 1)",
        f"{path}: grid.activation: 'sigmoid' is not allowed: Input should be 'tanh', 'relu' or "
        "'leaky_relu'",
        f"{path}: grid.lr: -0.1 is not allowed: Input should be greater than 0 (allowed: a number > 0)",
    ]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[grid\nlr = 1", "not valid TOML"),
        ("[base]\nseed = 3", "base.seed: set seeds with the top-level `seeds = [...]`"),
        (
            "lr = 0.1",
            "lr: unknown top-level key; allowed: description, seeds, base, grid, variants, resources (did you mean to put it under [base]?)",
        ),  # noqa: E501
        ("[grid]\nlr = [0.1]\n[[variants]]\nlr = 0.2", "variants[0].lr: also in [grid]"),
        ("[base]\nstep_size = 100", "base.step_size: 100 is not allowed: needs scheduler 'steplr'"),
        ('[base]\nscheduler = "steplr"\ngamma = 0.9', "step_size: missing: is required"),
        ('[base]\nmodel = "fc"\nactivation = "relu"', "base.activation: 'relu' is not allowed"),
        ("[resources]\ngpu = 1", "resources.gpu: unknown; allowed: gpus, cpus"),
        ("description = 3", "description: must be a string"),
        ("[grid]\nlr = []", "grid.lr: [] is not allowed"),
    ],
)
def test_single_mistakes(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ExperimentError) as info:
        load_experiment(path)
    assert any(expected in line for line in info.value.problems), info.value.problems


def test_missing_file(tmp_path):
    with pytest.raises(ExperimentError, match="no such experiment file"):
        load_experiment(tmp_path / "nope.toml")


def test_the_shipped_experiments_match_the_study():
    study = REPO / "experiments" / "study"
    counts = {p.stem: len(load_experiment(p).runs) for p in study.glob("*.toml")}
    assert counts == {
        "fc_baseline": 3, "lenet_baseline": 3, "scheduler": 36,
        "learning_rate": 24, "optimizer": 9, "loss": 9, "batch_size": 24, "activation": 9,
        "pooling": 6, "batchnorm": 6, "dropout": 6, "combined": 6,
    }  # fmt: skip
    assert [p.name for p in (REPO / "experiments").glob("*.toml")] == ["quickstart.toml"]
    assert len(load_experiment(REPO / "experiments" / "quickstart.toml").runs) == 6
    for path in study.glob("*.toml"):
        exp = load_experiment(path)
        assert exp.seeds == (0, 1, 2)
        assert {c.epochs for c in exp.runs} == {20}
    combined = load_experiment(study / "combined.toml")
    assert {(c.channels, c.pooling, c.batchnorm) for c in combined.runs} == {
        ((32, 64, 256), "max", True)
    }
    scheduler = load_experiment(study / "scheduler.toml")
    assert {(c.lr, c.step_size, c.gamma) for c in scheduler.runs} == {
        (lr, s, 0.9) for lr in (0.001, 0.01) for s in (100, 200, 400, 800, 1600, 3200)
    }
