"""One metadata builder: a run trained by `fmnist-ray train` and one trained by the Ray runner
carry the same metadata keys, with the driver's git commit and where each ran."""

import io
import os
import subprocess
import sys

import pytest
import ray
from conftest import train_grid

from fmnist_ray.spec.grid import load_experiment
from fmnist_ray.store.results import find_run_files, git_commit, read_metadata


@pytest.mark.slow
def test_train_and_run_write_the_same_metadata(tmp_path, data_dir, small):
    env = os.environ | {"FMNIST_DATA_DIR": str(data_dir), "RAY_USAGE_STATS_ENABLED": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "fmnist_ray", "train", "--model", "fc", "--epochs", "1",
         "--results", str(tmp_path / "a"), "--threads", "1"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (solo,) = [read_metadata(p) for p in find_run_files([tmp_path / "a"])]

    exp = tmp_path / "exp.toml"
    exp.write_text('[base]\nmodel = "fc"\nepochs = 1\n')
    ray.init(address="local", num_cpus=1, include_dashboard=False, logging_level="ERROR")
    try:
        outcome = train_grid([load_experiment(exp)], small, tmp_path / "b", stream=io.StringIO())
    finally:
        ray.shutdown()
    assert outcome.exit_code == 0
    (grid,) = [read_metadata(p) for p in find_run_files([tmp_path / "b"])]

    assert set(solo) == set(grid) and set(solo["versions"]) == set(grid["versions"])
    assert solo["git_commit"] == grid["git_commit"] == git_commit()
    assert solo["ray_node_id"] is None and solo["gpu_ids"] == []
    assert grid["ray_node_id"] and grid["torch_threads"] == solo["torch_threads"] == 1
    assert solo["device"] == grid["device"] == "cpu"
