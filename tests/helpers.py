"""Helpers the test modules share (the fixtures are in conftest.py): the command line in a
subprocess, waiting for a condition, the processes below a driver, a small experiment file, a
grid trained as `run` trains it, and a loopback S3 server. Import them from here, never from
another test module."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FC = 'model = "fc"\nepochs = 1'  # the fastest run there is: the fully connected net, one epoch
# For the tests that start a driver's Ray and train, signal it, and wait for it or rerun: 20-90 s
# on this 2-core box, 220-300 s under a load of twice its cores, where pytest-timeout's suite
# default (300 s) failed them with nothing hung. A hang still fails, at 15 minutes.
UNDER_SIGNALS = pytest.mark.timeout(900)


def experiment_file(folder: Path, base: str = FC, seeds=(0, 1), grid: str = "", name: str = "exp"):
    """A small experiment file FOLDER/NAME.toml: `[base]` as given (the fc net for one epoch),
    one run per seed (`seeds=None`: no seeds line), and `[grid]` when given."""
    seeds_line = "" if seeds is None else f"seeds = {list(seeds)}\n"
    path = Path(folder) / f"{name}.toml"
    path.write_text(seeds_line + f"[base]\n{base}\n" + (f"[grid]\n{grid}\n" if grid else ""))
    return path


def results_of(folder: Path) -> list[Path]:
    """An experiment folder's run files."""
    return sorted((folder / "runs").glob("*.parquet"))


def gone_within(pids, seconds=30) -> list[str]:
    """Those of `pids` still running after `seconds`, each as "pid state command" so that a
    failure says what was left; they are then killed (by pid)."""
    try:
        wait_for(lambda: not still_running(pids), seconds=seconds, step=0.5)
    except TimeoutError:
        pass
    leftover = still_running(pids)
    described = [_describe(pid) for pid in leftover]
    kill_all(leftover)
    return described


def _describe(pid: int) -> str:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        command = "?"
    found = _parent_and_state(pid)
    return f"{pid} {found[1] if found else '?'} {command.strip()[:200]}"


def cli(*args, env=None, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    """`fmnist-ray ARGS` in a subprocess, as a user types it."""
    return subprocess.run([sys.executable, "-m", "fmnist_ray", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)  # fmt: skip


def cli_here(*args, env=None) -> subprocess.CompletedProcess:
    """`fmnist-ray ARGS` in this process: the real entry point (`main`, with its one-line errors)
    inside click's CliRunner isolation; the same exit code, stdout and stderr as `cli` gives,
    without starting Python, `env` set meanwhile. For tests where a separate process is not the
    point."""
    from click.testing import CliRunner

    from fmnist_ray.cli.commands import main

    argv = ["fmnist-ray", *map(str, args)]
    saved, sys.argv = sys.argv, argv
    try:
        with CliRunner().isolation(env=env) as (out, err, _):
            try:
                main()
                code = 0
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else int(done.code is not None)
    finally:
        sys.argv = saved
    return subprocess.CompletedProcess(argv, code, out.getvalue().decode(), err.getvalue().decode())


def start_cli(*args, env=None) -> subprocess.Popen:
    """`fmnist-ray ARGS` started in the background, its output piped."""
    return subprocess.Popen([sys.executable, "-m", "fmnist_ray", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def wait_for(condition, seconds=300, step=0.2):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return
        time.sleep(step)
    raise TimeoutError("condition not met in time")


_BORN: dict[int, str] = {}  # pid -> start time, of every process these helpers have seen


def _parent_and_state(pid: int, seen_now: bool = False) -> tuple[int, str] | None:
    """(parent, state) of process `pid`, or None when it is gone, or when its pid now names
    another process than the one seen before (pids wrap at 32,768 here, and a suite's Ray
    clusters start thousands of processes); `seen_now` records who it names now."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if seen_now:
        _BORN[pid] = fields[19]  # field 22 of stat: the start time
    elif _BORN.setdefault(pid, fields[19]) != fields[19]:
        return None
    return int(fields[1]), fields[0]


def takes_sigint(pid: int) -> bool:
    """Whether SIGINT would reach process `pid`'s handler: neither ignored nor blocked (an
    ignored SIGINT is inherited from a test run started in the background; see conftest)."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    masks = [int(line.split()[1], 16) for line in status if line.startswith(("SigIgn", "SigBlk"))]
    return not any(mask & (1 << (signal.SIGINT - 1)) for mask in masks)


def descendants(pid: int) -> set[int]:
    """Every process below `pid` now (a driver's Ray: GCS, raylet, workers, agents)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (found := _parent_and_state(int(entry.name), seen_now=True)):
            children.setdefault(found[0], []).append(int(entry.name))
    below, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in below:
                below.add(child)
                todo.append(child)
    return below


def still_running(pids) -> list[int]:
    """Those of `pids` that still run (zombies count as gone)."""
    return sorted(p for p in pids if (found := _parent_and_state(p)) and found[1] != "Z")


def kill_all(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early with code {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {seconds}s")


def train_grid(experiments, data, results, resources=None, force=False, **options):
    """What `fmnist-ray run` does, in this process on the connected Ray: plan the experiments
    against the results root, tidy (quarantine, filing), train what is pending."""
    from fmnist_ray.planning.plan import make_plan, prepare
    from fmnist_ray.runner.driver import run_grid

    plan = make_plan(list(experiments), results, force=force, resources=resources)
    prepare(plan)
    return run_grid(plan, data, **options)


S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                  "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}  # fmt: skip


def start_s3_server() -> tuple[subprocess.Popen, str]:
    """A real S3 API (moto's server) on loopback, in its own process: (process, HOST:PORT)."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ | S3_CREDENTIALS,
    )  # fmt: skip
    try:
        wait_for_port(port, server)
    except Exception:
        server.kill()
        server.wait()
        raise
    return server, f"127.0.0.1:{port}"


LOCAL_RAY: dict = {}  # the resources of the Ray conftest's `local_ray` keeps connected


def no_ray_connected():
    """Leave the Ray `local_ray` keeps for the next test, for a test that starts its own."""
    import ray

    ray.shutdown()
    LOCAL_RAY.clear()
