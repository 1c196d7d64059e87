"""A real Ray cluster started by `ray start --head` (token auth on, as Ray sets it up), recorded
where Ray records it: `submit` sends a grid as a Ray Job into a loopback S3 server, `run` joins it
by `--address auto` and `$RAY_ADDRESS`, never without an address (live or stale record), and a
missing or wrong token gives one clear line. Every process the test starts is stopped by pid."""

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TOKEN_PATH  # the session's Ray token
from helpers import (
    S3_CREDENTIALS,
    cli,
    descendants,
    experiment_file,
    free_port,
    kill_all,
    still_running,
    wait_for,
    wait_for_port,
)

from fmnist_ray.runner.cluster import ray_temp_dir, recorded_address
from fmnist_ray.spec.config import RunConfig
from fmnist_ray.spec.grid import load_experiments
from fmnist_ray.store.tree import read_results, read_tree

pytestmark = pytest.mark.slow
VENV_BIN = str(Path(sys.executable).parent)
HEAD_RESOURCE = "test_head"  # a custom resource only this head has: a joined run sees it


def stop_head(head: subprocess.Popen) -> list[int]:
    """Stop `ray start --block` and everything below it, by pid; those still running after."""
    below = descendants(head.pid) | {head.pid}
    os.killpg(head.pid, signal.SIGTERM)  # `ray start --block` stops its processes on SIGTERM,
    try:  # but takes ~30 s over it: after a short grace, what is left is killed
        wait_for(lambda: not still_running(below), seconds=5)
    except TimeoutError:
        kill_all(still_running(below))
    head.wait(timeout=60)
    wait_for(lambda: not still_running(below), seconds=30)
    return still_running(below)


@pytest.fixture(scope="module")
def ray_head(s3_server):
    """`ray start --head --dashboard-host 127.0.0.1` on free ports, in Ray's default temp dir
    (the suite's $RAY_TMPDIR), with the suite's token file, the S3 test credentials and this
    venv's python on PATH (the job's `python -m fmnist_ray` runs on the head)."""
    gcs, dashboard, agent = free_port(), free_port(), free_port()
    env = os.environ | S3_CREDENTIALS | {"PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    head = subprocess.Popen(
        [f"{VENV_BIN}/ray", "start", "--head", "--block", "--num-cpus", "2",
         "--resources", json.dumps({HEAD_RESOURCE: 1}), "--port", str(gcs),
         "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
         "--dashboard-agent-listen-port", str(agent), "--disable-usage-stats"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for_port(dashboard, head, seconds=120)
        yield {"gcs": f"127.0.0.1:{gcs}", "port": gcs, "dashboard": f"http://127.0.0.1:{dashboard}"}
    finally:
        leftover = stop_head(head)
    assert leftover == []


@pytest.fixture
def record(ray_head):
    """Ray's default record of the cluster on this machine (what `ray.init()` and `--address
    auto` read); whatever it held is put back afterwards."""
    path = ray_temp_dir() / "ray_current_cluster"
    before = path.read_text() if path.exists() else None
    yield path
    if before is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(before)


def grid(tmp_path, seeds=(0, 1)):
    return experiment_file(tmp_path, seeds=seeds, name="jobgrid")


def joined_the_head(results: Path) -> bool:
    """Whether the run that wrote `results` ran on the test's head (its environment.json lists
    the cluster's resources)."""
    manifest = json.loads((results / "jobgrid" / "environment.json").read_text())
    return HEAD_RESOURCE in manifest["cluster_resources"]


def test_submit_runs_the_grid_as_a_ray_job_into_s3(tmp_path, ray_head, s3_uri, data_dir):
    done = cli("submit", grid(tmp_path), "--address", ray_head["dashboard"], "--results", s3_uri,
               "--data-dir", Path(data_dir).resolve())  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "submitted job raysubmit_" in done.stdout
    assert "2 trained, 0 already done, 0 failed" in done.stdout  # the job's own log, followed
    assert "SUCCEEDED" in done.stdout
    expected = {RunConfig(model="fc", epochs=1, seed=s).run_id for s in (0, 1)}
    assert set(read_tree([s3_uri]).by_id()) == expected
    assert read_results([s3_uri]).num_rows == 2
    # The job saw what exists: submitted again, it trains nothing.
    again = cli("submit", grid(tmp_path), "--address", ray_head["dashboard"], "--results", s3_uri,
                "--data-dir", Path(data_dir).resolve(), "--no-wait")  # fmt: skip
    assert again.returncode == 0
    assert "ray job logs -f raysubmit_" in again.stdout


def test_ray_address_joins_with_the_token_from_ray_auth_token_path(tmp_path, ray_head, data_dir):
    """$RAY_ADDRESS instead of --address; the token only in the file $RAY_AUTH_TOKEN_PATH names
    (no ~/.ray/auth_token, no RAY_AUTH_MODE), as the README promises."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")} | {
        "HOME": str(home), "RAY_AUTH_TOKEN_PATH": str(TOKEN_PATH), "RAY_ADDRESS": ray_head["gcs"],
    }  # fmt: skip
    results = tmp_path / "r"
    done = cli("run", grid(tmp_path, seeds=(0,)), "--data-dir", data_dir, "--results", results,
               env=env)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 trained" in done.stdout
    assert "InvalidAuthToken" not in done.stderr
    assert joined_the_head(results)
    assert not (home / ".ray").exists()


def test_address_auto_joins_the_recorded_head(tmp_path, ray_head, record, data_dir):
    assert recorded_address().rpartition(":")[2] == str(ray_head["port"])  # the real record
    results = tmp_path / "r"
    done = cli("run", grid(tmp_path, seeds=(0,)), "--address", "auto", "--data-dir", data_dir,
               "--results", results)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 trained" in done.stdout
    assert joined_the_head(results)
    # A stale record (nothing listens there): one clear line within seconds, no Ray started.
    record.write_text(f"127.0.0.1:{free_port()}")
    stale = cli("run", grid(tmp_path, seeds=(1,)), "--address", "auto", "--data-dir", data_dir,
                "--results", results, timeout=120)  # fmt: skip
    assert stale.returncode == 2
    assert stale.stderr.strip().splitlines()[-1].startswith("error: cannot reach a Ray cluster")


def test_missing_or_wrong_token_is_one_clear_line(tmp_path, ray_head, data_dir):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")} | {
        "HOME": str(home)
    }
    results = tmp_path / "x"
    missing = cli("submit", grid(tmp_path), "--address", ray_head["dashboard"],
                  "--results", results, env=env, timeout=120)  # fmt: skip
    assert missing.returncode == 2
    [line] = missing.stderr.strip().splitlines()
    assert "requires token authentication and no token was found" in line
    assert "~/.ray/auth_token" in line
    wrong = cli("submit", grid(tmp_path), "--address", ray_head["dashboard"], "--results",
                results, env=env | {"RAY_AUTH_TOKEN": "x" * 32}, timeout=120)  # fmt: skip
    assert wrong.returncode == 2
    assert "the token from $RAY_AUTH_TOKEN was refused" in wrong.stderr.strip().splitlines()[-1]
    refused = cli("run", grid(tmp_path), "--address", ray_head["gcs"], "--results", results,
                  "--data-dir", data_dir, env=env | {"RAY_AUTH_TOKEN": "x" * 32}, timeout=300)  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.strip().splitlines()[-1].startswith("error: the Ray cluster at")
    assert "InvalidAuthToken" not in refused.stderr.replace("(InvalidAuthToken)", "")
    assert not (home / ".ray").exists()


@pytest.mark.parametrize("state", ["live", "stale"])
def test_run_without_address_never_joins_the_recorded_cluster(
    tmp_path, ray_head, record, data_dir, state
):
    """Ray's default record names the live head (as `ray start` left it), or a dead one; a plain
    `ray.init()` would join or wait for it. `run` still starts its own Ray (joining a cluster
    would refuse --num-cpus; the head's resource would show in environment.json)."""
    if state == "stale":
        record.write_text(f"127.0.0.1:{free_port()}")
    else:
        assert recorded_address().rpartition(":")[2] == str(ray_head["port"])
    results = tmp_path / "r"
    done = cli("run", grid(tmp_path, seeds=(0,)), "--data-dir", data_dir, "--results", results,
               "--num-cpus", "1", timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Ray: 1 CPUs, 0 GPUs" in done.stdout
    assert not joined_the_head(results)


def test_submit_refuses_a_relative_results_before_contacting_anyone(tmp_path):
    done = cli("submit", grid(tmp_path), "--address", f"http://127.0.0.1:{free_port()}",
               "--results", "results")  # fmt: skip
    assert done.returncode == 2
    assert done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: --results results: a relative path would be written inside")


def test_submit_ships_only_the_code_and_the_experiment_files(tmp_path, monkeypatch):
    """What the job's working directory holds when it is sent: this package's source files and
    the experiment files, nothing else of the checkout (results/, .venv/, benchmarks/...)."""
    from fmnist_ray.runner import submit

    (tmp_path / "exps").mkdir()
    grid(tmp_path / "exps")
    shipped = {}

    def capture(client, entrypoint, working_dir):
        shipped["files"] = sorted(
            str(p.relative_to(working_dir)) for p in working_dir.rglob("*") if p.is_file()
        )
        shipped["entrypoint"] = entrypoint
        return "raysubmit_test"

    monkeypatch.setattr(submit, "client_for", lambda address: None)
    monkeypatch.setattr(submit, "submit_job", capture)
    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # a checkout, results/ and all
    code = submit.submit("http://h:8265", load_experiments([tmp_path / "exps"]), ["--force"],
                         wait=False, stream=io.StringIO())  # fmt: skip
    package = Path(submit.__file__).parents[1]
    sources = {
        f"fmnist_ray/{p.relative_to(package)}"
        for p in package.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert code == 0
    assert set(shipped["files"]) == sources | {"experiments/jobgrid.toml"}
    assert shipped["entrypoint"] == ["python", "-m", "fmnist_ray", "run",
                                     "experiments/jobgrid.toml", "--force"]  # fmt: skip
