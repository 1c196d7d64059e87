"""The Python API inside a real Jupyter kernel (ipykernel, driven through jupyter_client as a
notebook drives it): a grid's progress lands in the cell's output, and "interrupt the kernel"
mid-grid cancels the pending runs, keeps the finished ones, raises GridInterrupted in the cell,
stops the Ray the cell started, and leaves the kernel alive with the outcome at hand."""

import time

import pytest
from helpers import descendants, gone_within, results_of, wait_for
from jupyter_client import KernelManager

from fmnist_ray.store.results import check_run

pytestmark = pytest.mark.slow
GRID = 'seeds = [0, 1, 2]\n[base]\nmodel = "fc"\nepochs = 1\n'


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    """A Python kernel of this interpreter, its connection files and IPython's profile in
    tmp_path (never $HOME); shut down at the end."""
    for name in ("JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR", "IPYTHONDIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(cwd=str(tmp_path))
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=120)
        yield manager, client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def cell_output(client, msg_id: str, seconds: float = 300) -> list[dict]:
    """The output messages of one cell, until the kernel is idle again after it."""
    messages, deadline = [], time.time() + seconds
    while time.time() < deadline:
        message = client.get_iopub_msg(timeout=seconds)
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
            return messages
        messages.append(message)
    raise TimeoutError("the cell did not finish")


def printed(messages: list[dict]) -> str:
    return "".join(m["content"]["text"] for m in messages if m["msg_type"] == "stream")


def test_interrupting_the_kernel_mid_grid_keeps_finished_runs(kernel, tmp_path, data_dir):
    manager, client = kernel
    (tmp_path / "exp.toml").write_text(GRID)
    results = tmp_path / "results"
    cell = client.execute(
        "import fmnist_ray\n"
        f"fmnist_ray.run('exp.toml', results={str(results)!r}, data_dir={str(data_dir)!r}, "
        "num_cpus=1)"
    )
    wait_for(lambda: results_of(results / "exp"), seconds=240)
    its_ray = descendants(manager.provisioner.process.pid)
    manager.interrupt_kernel()  # what the notebook's "interrupt the kernel" sends: SIGINT
    messages = cell_output(client, cell)
    [error] = [m["content"] for m in messages if m["msg_type"] == "error"]
    assert error["ename"] == "GridInterrupted", error
    assert error["evalue"].startswith("interrupted (SIGINT): finished runs are kept")
    kept = {path.stem for path in results_of(results / "exp")}
    assert 1 <= len(kept) < 3
    assert all(kept_id in printed(messages) for kept_id in kept)
    assert all(check_run(path).num_rows == 1 for path in results_of(results / "exp"))
    assert not (results / "exp" / ".lock").exists()
    assert gone_within(its_ray) == []  # the cell's Ray stopped with it

    check = client.execute(
        "import sys\nstopped = sys.last_value.outcome\n"
        "print(sorted(r.run_id for r in stopped.trained), len(stopped.cancelled))"
    )
    assert printed(cell_output(client, check)).strip() == f"{sorted(kept)} {3 - len(kept)}"
