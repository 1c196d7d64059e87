"""Shared fixtures (plain helpers are in helpers.py): the real Fashion-MNIST ($FMNIST_DATA_DIR,
else ../shared/data, else the user cache that `fmnist-ray run` downloads into), a local Ray, a
loopback S3 server; and one scratch folder per session that holds every temporary file, Ray
session and Ray token the suite makes, removed at the end."""

import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import pytest
from helpers import LOCAL_RAY, REPO, S3_CREDENTIALS, start_s3_server, train_grid, wait_for  # noqa: F401 (still imported from here by some modules)

from fmnist_ray.training.data import ENV_VAR, default_cache_dir, load_fashion_mnist

# A test run started as a background job of a non-interactive shell (`pytest &`, as CI scripts
# and agents do) inherits SIGINT and SIGQUIT ignored, and so does every driver a test starts: a
# Python process that starts with SIGINT ignored never raises KeyboardInterrupt, so the Ctrl-C
# tests would fail as if the driver lost the signal. The tests send it on purpose: take it back.
signal.signal(signal.SIGINT, signal.default_int_handler)

DATA_DIRS = [Path(os.environ[ENV_VAR])] if os.environ.get(ENV_VAR) else [
    REPO.parent / "shared" / "data", default_cache_dir()
]  # fmt: skip

# Everything the suite and its subprocesses write outside tmp_path lands in SCRATCH: pytest's
# tmp_path, Ray's sessions and its default cluster record ($RAY_TMPDIR/ray), spill files,
# matplotlib's cache, and the Ray token (so ~/.ray/auth_token is never read or written). Set
# before ray is imported; a cluster or token of the user's own is never seen or touched.
SCRATCH = Path(tempfile.mkdtemp(prefix="frt-"))  # short: Ray's socket paths must stay < 108
TOKEN_PATH = SCRATCH / "auth_token"
TOKEN_PATH.write_text(secrets.token_hex(32))
for _name in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_API_SERVER_ADDRESS"):
    os.environ.pop(_name, None)
os.environ.update(
    TMPDIR=str(SCRATCH), RAY_TMPDIR=str(SCRATCH), MPLCONFIGDIR=str(SCRATCH / "matplotlib"),
    XDG_CACHE_HOME=str(SCRATCH / "cache"), RAY_AUTH_TOKEN_PATH=str(TOKEN_PATH),
    RAY_USAGE_STATS_ENABLED="0",
)  # fmt: skip
tempfile.tempdir = str(SCRATCH)


def pytest_unconfigure(config):
    """Remove SCRATCH once no process uses it: Ray's processes can take seconds to exit, and
    one that outlives the removal would make its session folder again."""
    deadline = time.time() + 30
    while _processes_using(SCRATCH) and time.time() < deadline:
        time.sleep(0.5)
    shutil.rmtree(SCRATCH, ignore_errors=True)


def _processes_using(folder: Path) -> list[int]:
    """Processes, other than this one, whose command line names `folder`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if str(folder).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


@pytest.fixture
def local_ray():
    """Connect to a local Ray with the given logical resources (num_cpus=, num_gpus=). One Ray
    serves a module's tests in a row that ask for the same resources (each grid starts and
    stops its own actors; a start costs seconds); other resources restart it, and the module's
    end stops it (`one_ray_per_module`)."""
    import ray

    def connect(**resources):
        if ray.is_initialized() and LOCAL_RAY.get("resources") == resources:
            return
        ray.shutdown()
        ray.init(address="local", include_dashboard=False, logging_level="ERROR", **resources)
        LOCAL_RAY["resources"] = resources

    return connect


@pytest.fixture(scope="module", autouse=True)
def one_ray_per_module():
    """Stop, at a module's end, the Ray its tests connected to (`local_ray`, or their own)."""
    yield
    if "ray" in sys.modules:
        import ray

        ray.shutdown()
    LOCAL_RAY.clear()


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


@pytest.fixture
def s3_credentials(monkeypatch):
    """The loopback S3 server's credentials, in this process and every subprocess it starts."""
    for key, value in S3_CREDENTIALS.items():
        monkeypatch.setenv(key, value)


@pytest.fixture(scope="session")
def s3_server():
    """One S3 server for the session; stopped by its pid. Tests that talk to it also take
    `s3_credentials` (the `s3_uri` fixture does)."""
    server, address = start_s3_server()
    try:
        yield address
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def s3_uri(s3_server, s3_credentials, request):
    """A fresh bucket on the loopback S3 server, as a results URI pyarrow opens."""
    from pyarrow.fs import S3FileSystem

    bucket = "t" + str(abs(hash(request.node.nodeid)))[:12]
    host, port = s3_server.split(":")
    fs = S3FileSystem(endpoint_override=s3_server, scheme="http", allow_bucket_creation=True)
    fs.create_dir(bucket)
    return f"s3://{bucket}/study?endpoint_override={host}:{port}&scheme=http"


@pytest.fixture
def slow_s3(s3_server, s3_credentials, request):
    """(proxy, uri): a fresh bucket on the S3 server seen through a LatencyProxy (tests/s3_latency)
    that delays each request 20 ms and counts them; stopped when the test ends."""
    from pyarrow.fs import S3FileSystem
    from s3_latency import LatencyProxy

    bucket = "s" + str(abs(hash(request.node.nodeid)))[:12]
    S3FileSystem(endpoint_override=s3_server, scheme="http", allow_bucket_creation=True).create_dir(
        bucket
    )
    with LatencyProxy(s3_server, delay_ms=20) as proxy:
        yield proxy, f"s3://{bucket}/study?endpoint_override={proxy.address}&scheme=http"
