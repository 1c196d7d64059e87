"""Shared fixtures: the real Fashion-MNIST ($FMNIST_DATA_DIR, else ../shared/data, else the user
cache that `fmnist-ray run` downloads into), loaded once, and small real slices of it."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fmnist_ray.data import ENV_VAR, default_cache_dir, load_fashion_mnist

REPO = Path(__file__).resolve().parents[1]
DATA_DIRS = [Path(os.environ[ENV_VAR])] if os.environ.get(ENV_VAR) else [
    REPO.parent / "shared" / "data", default_cache_dir()
]  # fmt: skip


@pytest.fixture(scope="session")
def data_dir() -> Path:
    found = next((folder for folder in DATA_DIRS if folder.exists()), None)
    if found is None:
        pytest.fail(f"Fashion-MNIST not found in {' or '.join(map(str, DATA_DIRS))}; set {ENV_VAR}")
    return found


@pytest.fixture(scope="session")
def fmnist(data_dir):
    return load_fashion_mnist(data_dir, download=False)


@pytest.fixture(scope="session")
def small(fmnist):
    """2,000 training and 500 test images: enough to see learning in a second."""
    return fmnist.subset(train=2000, test=500)


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
    from fmnist_ray.plan import make_plan, prepare
    from fmnist_ray.runner import run_grid

    plan = make_plan(list(experiments), results, force=force, resources=resources)
    prepare(plan)
    return run_grid(plan, data, **options)


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 API (moto's server) on loopback, in its own process; stopped by its pid."""
    port = free_port()
    credentials = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ | credentials,
    )  # fmt: skip
    try:
        wait_for_port(port, server)
        saved = {key: os.environ.get(key) for key in credentials}
        os.environ.update(credentials)  # pyarrow here and every CLI subprocess read these
        yield f"127.0.0.1:{port}"
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def s3_uri(s3_server, request):
    """A fresh bucket on the loopback S3 server, as a results URI pyarrow opens."""
    from pyarrow.fs import S3FileSystem

    bucket = "t" + str(abs(hash(request.node.nodeid)))[:12]
    host, port = s3_server.split(":")
    fs = S3FileSystem(endpoint_override=s3_server, scheme="http", allow_bucket_creation=True)
    fs.create_dir(bucket)
    return f"s3://{bucket}/study?endpoint_override={host}:{port}&scheme=http"
