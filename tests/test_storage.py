"""Results on any pyarrow filesystem: local folders with durable, readable files, and a real S3
API on loopback (moto's server) for a grid that is run, resumed, planned and read from a URI."""

import io
import os

import pytest
from helpers import cli, experiment_file

from fmnist_ray.planning.plan import make_plan
from fmnist_ray.runner.driver import run_grid
from fmnist_ray.spec.config import Resources, RunConfig
from fmnist_ray.spec.grid import load_experiments
from fmnist_ray.store.results import read_failures
from fmnist_ray.store.storage import StorageError, locate
from fmnist_ray.store.tree import read_results, read_tree


def test_local_writes_are_atomic_and_readable_by_others(tmp_path):
    target = locate(tmp_path / "a" / "runs" / "x.parquet")
    old = os.umask(0o022)
    try:
        target.write_bytes(b"first")
        target.write_bytes(b"second")
    finally:
        os.umask(old)
    path = tmp_path / "a" / "runs" / "x.parquet"
    assert path.read_bytes() == b"second"
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["x.parquet"]  # no temporary left


def test_unknown_scheme_is_one_clear_error():
    with pytest.raises(StorageError, match="nosuch://x: cannot open this location"):
        locate("nosuch://x")


@pytest.mark.slow
def test_grid_on_s3_runs_resumes_and_reads_back(tmp_path, s3_uri, data_dir):
    exp = experiment_file(tmp_path)
    args = ["run", exp, "--results", s3_uri, "--data-dir", data_dir, "--num-cpus", "2"]
    first = cli(*args)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "2 trained, 0 already done, 0 failed" in first.stdout
    bucket_path = s3_uri.split("?")[0]
    assert bucket_path in first.stdout  # the URI is shown without its query
    index = read_tree([s3_uri]).by_id()
    assert set(index) == {RunConfig(model="fc", epochs=1, seed=s).run_id for s in (0, 1)}
    table = read_results([s3_uri])
    assert table.num_rows == 2
    assert set(table.column("experiment").to_pylist()) == {"exp"}
    assert (locate(s3_uri) / "exp" / "experiment.toml").read_text() == exp.read_text()
    again = cli(*args)
    assert again.returncode == 0
    assert "nothing to train: all 2 runs of exp are done" in again.stdout
    plan = cli("plan", exp, "--results", s3_uri)
    assert "2 runs: 2 done, 0 pending, 0 failed" in plan.stdout, plan.stdout
    report = cli("report", s3_uri, "--out", tmp_path / "report")
    assert report.returncode == 0, report.stderr
    # The report read both runs from the bucket: the arm's row has 2 seeds and their mean.
    mean = sum(table.column("test_acc").to_pylist()) / 2
    row = "| fc adam lr=0.001 cross_entropy bs=100 epochs=1 (base case) | 2 | "
    [line] = [x for x in (tmp_path / "report" / "exp" / "summary.md").read_text().splitlines()
              if x.startswith(row)]  # fmt: skip
    assert line.split(" | ")[3] == f"{100 * mean:.2f}", line


def test_failures_are_recorded_on_s3(tmp_path, s3_uri, small, local_ray):
    exp = experiment_file(tmp_path, seeds=(0,))

    def broken(cfg, data, device, on_epoch=None):
        raise RuntimeError("injected")

    local_ray(num_cpus=1)
    plan = make_plan(load_experiments([exp]), s3_uri, resources={"cpus": 1})
    outcome = run_grid(plan, small, train_fn=broken, stream=io.StringIO(), max_retries=0)
    assert outcome.exit_code == 1
    [record] = read_failures(locate(s3_uri) / "exp")
    assert "injected" in record["error"]
    assert make_plan(load_experiments([exp]), s3_uri).runs[0].failed_before
    assert Resources(cpus=1) == plan.runs[0].resources
