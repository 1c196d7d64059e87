"""What a run computes is pinned: a committed study run's first epoch, trained again here, is
matched exactly, and so are short histories of a few configs (tests/pinned_histories.json). A
change that fails here changes results: bump TRAINING_VERSION and regenerate the pins
(tests/pin_histories.py says how); the committed study then needs retraining."""

import json
from pathlib import Path

import pytest
import torch
from pin_histories import CONFIGS, KEYS, PINNED, history

from fmnist_ray.spec.config import RunConfig
from fmnist_ray.store.results import read_metadata, read_run
from fmnist_ray.training.train import train_run

REPO = Path(__file__).resolve().parents[1]
STUDY_RUNS = {
    "fc": REPO / "results" / "fc_baseline" / "runs" / "a406498a5c59.parquet",  # seed 0
    "lenet5 bs=1280": REPO / "results" / "batch_size" / "runs" / "9f4f1f32ad9b.parquet",  # seed 0
}


@pytest.mark.slow
@pytest.mark.parametrize("name", STUDY_RUNS)
def test_a_committed_study_run_s_first_epoch_is_reproduced_exactly(fmnist, name):
    meta = read_metadata(STUDY_RUNS[name])
    cfg = RunConfig(**meta["config"])
    assert cfg.run_id == STUDY_RUNS[name].stem  # still this version's id for that config
    assert meta["device"] == "cpu"
    committed = read_run(STUDY_RUNS[name]).to_pylist()[0]
    threads = torch.get_num_threads()
    torch.set_num_threads(meta["torch_threads"])  # as it ran: float sums depend on threads
    try:
        [row] = train_run(cfg.model_copy(update={"epochs": 1}), fmnist, "cpu").history
    finally:
        torch.set_num_threads(threads)
    assert {k: row[k] for k in KEYS} == {k: committed[k] for k in KEYS}


def test_pinned_histories_are_reproduced_exactly(fmnist):
    pinned = json.loads(PINNED.read_text())["runs"]
    assert [RunConfig(**pin["config"]) for pin in pinned] == CONFIGS
    for cfg, pin in zip(CONFIGS, pinned):
        assert cfg.run_id == pin["run_id"]
        assert history(cfg, fmnist) == pin["history"], cfg.describe()
