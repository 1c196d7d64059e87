"""What a run computes is pinned: a committed study run's first epoch, trained again here, and short
histories of a few configs (tests/pinned_histories.json), exactly on a CPU the pins were recorded
on and within another CPU's float reach elsewhere (tests/pin_histories.py says why and how to add
a CPU). A change that fails here changes results: bump TRAINING_VERSION and regenerate the pins;
the committed study then needs retraining."""

import json
import warnings

import pytest
from pin_histories import (
    CONFIGS,
    PINNED,
    STUDY_RUNS,
    close,
    history,
    machine,
    recorded,
    study_first_epoch,
)

from fmnist_ray.spec.config import RunConfig
from fmnist_ray.store.results import read_metadata, read_run

PINS = json.loads(PINNED.read_text())


def unpinned_machine() -> None:
    warnings.warn(f"no pins recorded on this CPU ({machine()}): results checked within another "
                  "CPU's float reach, not exactly; `PYTHONPATH=. python tests/pin_histories.py "
                  "--add-machine` records them", stacklevel=2)  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name", STUDY_RUNS)
def test_a_committed_study_run_s_first_epoch_is_reproduced(fmnist, name):
    """Exactly as this CPU recorded it (the committed file itself on the CPU that trained the
    study, whose results are their own pins); close to the committed file everywhere."""
    meta = read_metadata(STUDY_RUNS[name])
    assert RunConfig(**meta["config"]).run_id == STUDY_RUNS[name].stem  # still this version's id
    assert meta["device"] == "cpu"
    committed = read_run(STUDY_RUNS[name]).to_pylist()[0]
    row = study_first_epoch(STUDY_RUNS[name], fmnist)
    assert close(row, committed) == []
    mine = recorded(PINS)
    if mine is not None:
        assert row == mine["study"][name]
    elif row != {key: committed[key] for key in row}:
        unpinned_machine()


def test_pinned_histories_are_reproduced(fmnist):
    assert [RunConfig(**pin["config"]) for pin in PINS["configs"]] == CONFIGS
    assert [cfg.run_id for cfg in CONFIGS] == [pin["run_id"] for pin in PINS["configs"]]
    got = [history(cfg, fmnist) for cfg in CONFIGS]
    mine = recorded(PINS)
    for one in PINS["machines"]:
        for cfg, rows, pinned in zip(CONFIGS, got, one["histories"]):
            for epoch, (row, pin) in enumerate(zip(rows, pinned, strict=True)):
                assert close(row, pin) == [], f"{cfg.describe()} epoch {epoch}"
    if mine is not None:
        for cfg, rows, pinned in zip(CONFIGS, got, mine["histories"]):
            assert rows == pinned, cfg.describe()
    elif all(got != one["histories"] for one in PINS["machines"]):
        unpinned_machine()
