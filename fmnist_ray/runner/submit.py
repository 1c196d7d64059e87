"""`fmnist-ray submit`: send the same `run` to a Ray cluster as a Ray Job (Ray's job submission
client), shipping only this package and the experiment files, then follow the job's logs."""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TextIO

from ..spec.grid import Experiment
from ..store.storage import is_uri
from .cluster import PACKAGE_DIR, ClusterError, auth_problem

SUBMIT_RETRY_S = 60.0  # a head that has just started may not have its job agent up yet


def check_results(results: str) -> None:
    """A relative path would land in the job's temporary working directory, which Ray deletes."""
    if not is_uri(results) and not Path(results).is_absolute():
        raise ClusterError(
            f"--results {results}: a relative path would be written inside the job's temporary "
            "working directory on the cluster, which Ray deletes when the job ends. Use a URI "
            "(s3://bucket/prefix, gs://...) or an absolute path on storage the cluster shares."
        )


def stage(experiments: list[Experiment], folder: Path) -> list[str]:
    """The job's working directory: this package's code and the experiment files, nothing else
    (no results/, .venv/ or benchmark data). Returns the files' paths inside it."""
    shutil.copytree(PACKAGE_DIR, folder / "fmnist_ray",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))  # fmt: skip
    (folder / "experiments").mkdir()
    names = []
    for exp in experiments:
        target = folder / "experiments" / f"{exp.name}.toml"
        target.write_text(exp.path.read_text())
        names.append(f"experiments/{exp.name}.toml")
    return names


def client_for(address: str):
    """Ray's job submission client for the dashboard at `address`, or one clear error."""
    from ray.job_submission import JobSubmissionClient

    url = address if "://" in address else f"http://{address}"
    try:
        return JobSubmissionClient(url)
    except ConnectionError as error:
        raise ClusterError(
            f"cannot reach a Ray dashboard at {url} ({str(error).splitlines()[0][:120]}); "
            "`ray start --head --dashboard-host 0.0.0.0` serves one on port 8265"
        ) from None
    except Exception as error:
        if type(error).__name__ == "AuthenticationError":
            raise auth_problem(str(error), url) from None
        raise


def submit_job(client, entrypoint: list[str], working_dir: Path) -> str:
    """Submit, retrying while a freshly started head has no job agent yet."""
    import shlex

    deadline = time.time() + SUBMIT_RETRY_S
    while True:
        try:
            return client.submit_job(
                entrypoint=shlex.join(entrypoint), runtime_env={"working_dir": str(working_dir)}
            )
        except RuntimeError as error:
            if "No available agent" not in str(error) or time.time() > deadline:
                raise ClusterError(f"the cluster refused the job: {error}") from None
            time.sleep(2)


def follow(client, job_id: str, stream: TextIO) -> int:
    """Print the job's logs until it ends; its exit code (0 when it succeeded)."""

    async def tail() -> None:
        async for lines in client.tail_job_logs(job_id):
            stream.write(lines)
            stream.flush()

    asyncio.run(tail())
    for _ in range(30):  # the log stream can close a moment before the status is final
        info = client.get_job_info(job_id)
        if info.status.is_terminal():
            break
        time.sleep(1)
    print(f"job {job_id}: {info.status.value}" + (f" ({info.message})" if info.message else ""),
          file=stream)  # fmt: skip
    if info.status.value == "SUCCEEDED":
        return 0
    return info.driver_exit_code or 1


def submit(
    address: str,
    experiments: list[Experiment],
    run_options: list[str],
    wait: bool = True,
    stream: TextIO = sys.stdout,
) -> int:
    """Send `fmnist-ray run FILES RUN_OPTIONS` as a Ray Job; follow it unless `wait` is off."""
    client = client_for(address)
    with tempfile.TemporaryDirectory(prefix="fmnist-ray-job-") as folder:
        files = stage(experiments, Path(folder))
        entrypoint = ["python", "-m", "fmnist_ray", "run", *files, *run_options]
        job_id = submit_job(client, entrypoint, Path(folder))
    where = f"--address {address}"
    print(f"submitted job {job_id} to {address}", file=stream)
    hints = (f"follow it: ray job logs -f {job_id} {where}\n"
             f"stop it:   ray job stop {job_id} {where}")  # fmt: skip
    if not wait:
        print(hints, file=stream)
        return 0
    try:
        return follow(client, job_id, stream)
    except KeyboardInterrupt:
        print(f"\ndetached: job {job_id} keeps running on the cluster.\n{hints}", file=stream)
        return 0
