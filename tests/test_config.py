"""RunConfig: the study's defaults, validation messages, and a run id that never drifts."""

import pytest

from fmnist_ray.spec.config import TRAINING_VERSION, ConfigError, RunConfig, make_config


def problems(**options) -> list[str]:
    with pytest.raises(ConfigError) as info:
        make_config(options)
    return info.value.problems


def test_defaults_are_the_study_base_case():
    cfg = RunConfig()
    assert (cfg.model, cfg.epochs, cfg.batch_size, cfg.lr) == ("lenet5", 20, 100, 0.001)
    assert (cfg.optimizer, cfg.loss, cfg.activation, cfg.pooling) == (
        "adam", "cross_entropy", "tanh", "avg",
    )  # fmt: skip
    assert cfg.channels == (6, 16, 120)
    assert (cfg.batchnorm, cfg.dropout, cfg.scheduler, cfg.step_size) == (
        False,
        False,
        "none",
        None,
    )


def test_run_id_is_stable_and_depends_on_every_field():
    # Literals: if one changes by accident, every stored result would be orphaned (resume would
    # retrain). A deliberate change of what training computes bumps TRAINING_VERSION instead.
    assert TRAINING_VERSION == 1
    assert RunConfig().run_id == "859ffaf356f9"
    assert RunConfig(model="fc").run_id == "a406498a5c59"
    wide = RunConfig(channels=(32, 64, 256), pooling="max", batchnorm=True, activation="relu")
    assert wide.run_id == "69cd738ac74f"
    steplr = RunConfig(scheduler="steplr", step_size=100, gamma=0.9, lr=0.01, seed=2)
    assert steplr.run_id == "b28979cc3c9b"
    assert RunConfig(lr=1).run_id == RunConfig(lr=1.0).run_id
    assert RunConfig(seed=1).run_id != RunConfig().run_id
    assert RunConfig(channels=[6, 16, 120]).run_id == RunConfig().run_id
    assert len({RunConfig(lr=lr).run_id for lr in (0.001, 0.002, 0.01)}) == 3


def test_run_id_changes_with_the_training_version(monkeypatch):
    before = RunConfig().run_id
    monkeypatch.setattr("fmnist_ray.spec.config.TRAINING_VERSION", 2)
    assert RunConfig().run_id != before


def test_fc_has_no_lenet_options():
    cfg = RunConfig(model="fc")
    assert cfg.activation is None
    assert cfg.channels is None
    assert cfg.batchnorm is None
    [line] = problems(model="fc", activation="relu")
    assert line.startswith("activation: 'relu' is not allowed")
    assert "lenet5" in line


@pytest.mark.parametrize(
    "options, expected",
    [
        ({"lr": 0}, "lr: 0 is not allowed: Input should be greater than 0"),
        ({"lr": -1}, "lr: -1 is not allowed"),
        ({"batch_size": 0}, "batch_size: 0 is not allowed"),
        ({"epochs": 2.5}, "epochs: 2.5 is not allowed"),
        ({"channels": [6, 0, 120]}, "channels: 0 (position 2) is not allowed"),
        ({"channels": [6, 16]}, "channels: [6, 16] is not allowed: need three channel counts"),
        ({"activation": "sigmoid"}, "activation: 'sigmoid' is not allowed"),
        ({"batchnorm": "yes"}, "batchnorm: 'yes' is not allowed"),
        ({"step_size": 100}, "step_size: 100 is not allowed: needs scheduler 'steplr'"),
        ({"gamma": 0.9}, "gamma: 0.9 is not allowed: needs scheduler 'steplr'"),
        ({"scheduler": "steplr", "gamma": 0.9}, "step_size: missing: is required"),
        ({"momentum": 0.9}, "momentum: 0.9 is not allowed: applies only to optimizers"),
        ({"colour": "red"}, "colour: unknown option; known options are: model"),
        ({"lr": float("nan")}, "lr: nan is not allowed"),
    ],
)
def test_each_bad_value_is_one_clear_line(options, expected):
    [line] = problems(**options)
    assert line.startswith(expected), line


def test_all_problems_are_reported_together():
    lines = problems(lr=0, batch_size=0, activation="sigmoid")
    assert [line.split(":")[0] for line in lines] == ["batch_size", "lr", "activation"]


def test_valid_steplr_and_momentum():
    cfg = RunConfig(scheduler="steplr", step_size=400, gamma=0.9, optimizer="sgd", momentum=0.9)
    assert (cfg.step_size, cfg.gamma, cfg.momentum) == (400, 0.9, 0.9)
