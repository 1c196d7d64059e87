"""A real Ray cluster started by `ray start --head` (token auth on, as Ray sets it up): `submit`
sends a grid as a Ray Job that writes to a loopback S3 server, `run --address` joins it, and a
missing or wrong token gives one clear line. Every process the test starts is stopped by pid."""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import free_port, wait_for_port

from fmnist_ray.config import RunConfig
from fmnist_ray.results import read_results, run_index

VENV_BIN = str(Path(sys.executable).parent)


def cli(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "fmnist_ray", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env)  # fmt: skip


def pids_using(marker: str) -> list[int]:
    """Processes whose command line names `marker` (this test's own Ray temp folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def stop_head(head: subprocess.Popen, temp_dir: str) -> None:
    os.killpg(head.pid, signal.SIGTERM)  # `ray start --block` stops its processes on SIGTERM
    try:
        head.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
    for sig in (signal.SIGTERM, signal.SIGKILL):  # anything it left behind, by pid
        for pid in pids_using(temp_dir):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        time.sleep(2)


@pytest.fixture(scope="module")
def ray_head(s3_server):
    """`ray start --head --dashboard-host 127.0.0.1` on free ports, with the S3 test credentials
    and this venv's python on PATH (the job's `python -m fmnist_ray` runs on the head)."""
    temp_dir = tempfile.mkdtemp(prefix="frh-", dir="/tmp")
    gcs, dashboard, agent = free_port(), free_port(), free_port()
    env = os.environ | {"PATH": f"{VENV_BIN}:{os.environ['PATH']}", "RAY_USAGE_STATS_ENABLED": "0"}
    head = subprocess.Popen(
        [f"{VENV_BIN}/ray", "start", "--head", "--block", "--num-cpus", "2",
         "--port", str(gcs), "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
         "--dashboard-agent-listen-port", str(agent), "--temp-dir", temp_dir,
         "--disable-usage-stats"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for_port(dashboard, head, seconds=120)
        yield {"gcs": f"127.0.0.1:{gcs}", "dashboard": f"http://127.0.0.1:{dashboard}"}
    finally:
        stop_head(head, temp_dir)
    assert pids_using(temp_dir) == []


def grid(tmp_path, seeds=(0, 1)):
    path = tmp_path / "jobgrid.toml"
    path.write_text(f'seeds = {list(seeds)}\n[base]\nmodel = "fc"\nepochs = 1\n')
    return path


def test_submit_runs_the_grid_as_a_ray_job_into_s3(tmp_path, ray_head, s3_uri, data_dir):
    done = cli("submit", grid(tmp_path), "--address", ray_head["dashboard"], "--results", s3_uri,
               "--data-dir", Path(data_dir).resolve())  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "submitted job raysubmit_" in done.stdout
    assert "2 trained, 0 already done, 0 failed" in done.stdout  # the job's own log, followed
    assert "SUCCEEDED" in done.stdout
    expected = {RunConfig(model="fc", epochs=1, seed=s).run_id for s in (0, 1)}
    assert set(run_index(s3_uri)) == expected
    assert read_results([s3_uri]).num_rows == 2
    # The job saw what exists: submitted again, it trains nothing.
    again = cli("submit", grid(tmp_path), "--address", ray_head["dashboard"], "--results", s3_uri,
                "--data-dir", Path(data_dir).resolve(), "--no-wait")  # fmt: skip
    assert again.returncode == 0 and "ray job logs -f raysubmit_" in again.stdout


def test_run_joins_a_token_cluster_by_address(tmp_path, ray_head, data_dir):
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}  # as a user has it
    done = cli("run", grid(tmp_path, seeds=(0,)), "--address", ray_head["gcs"],
               "--data-dir", data_dir, "--results", tmp_path / "r", env=env)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 trained" in done.stdout and "InvalidAuthToken" not in done.stderr


def test_missing_or_wrong_token_is_one_clear_line(tmp_path, ray_head, data_dir):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")} | {
        "HOME": str(home)
    }
    missing = cli("submit", grid(tmp_path), "--address", ray_head["dashboard"],
                  "--results", "/tmp/x", env=env, timeout=120)  # fmt: skip
    assert missing.returncode == 2
    [line] = missing.stderr.strip().splitlines()
    assert "requires token authentication and no token was found" in line
    assert "~/.ray/auth_token" in line
    wrong = cli("submit", grid(tmp_path), "--address", ray_head["dashboard"], "--results",
                "/tmp/x", env=env | {"RAY_AUTH_TOKEN": "x" * 32}, timeout=120)  # fmt: skip
    assert wrong.returncode == 2
    assert "the token from $RAY_AUTH_TOKEN was refused" in wrong.stderr.strip().splitlines()[-1]
    refused = cli("run", grid(tmp_path), "--address", ray_head["gcs"], "--results", tmp_path / "r",
                  "--data-dir", data_dir, env=env | {"RAY_AUTH_TOKEN": "x" * 32}, timeout=300)  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.strip().splitlines()[-1].startswith("error: the Ray cluster at")
    assert "InvalidAuthToken" not in refused.stderr.replace("(InvalidAuthToken)", "")


def test_run_without_address_never_joins_the_live_head(tmp_path, ray_head, data_dir):
    """`ray start` recorded this head on the machine; `run` still starts its own Ray (joining a
    cluster would refuse --num-cpus)."""
    done = cli("run", grid(tmp_path, seeds=(0,)), "--data-dir", data_dir, "--results",
               tmp_path / "r", "--num-cpus", "1")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Ray: 1 CPUs, 0 GPUs" in done.stdout
