"""A grid's results written to an object store through the latency proxy (tests/s3_latency.py):
one request per run, many at once, off the driver's loop, so runs land at the store's pace and
not one round trip at a time (benchmarks/bench_store.py times it beside one writer)."""

import io
import time

from helpers import experiment_file

from fmnist_ray.planning.plan import make_plan, prepare
from fmnist_ray.runner.driver import run_grid
from fmnist_ray.spec.grid import load_experiments
from fmnist_ray.store.tree import read_tree

RUNS = 24


def instant_grid(tmp_path, uri, small, proxy=None):
    """RUNS runs that train in no time (the driver's landing is all there is to time), written
    under `uri`: the outcome, the seconds from the first run's start to the grid's end (the
    trainers' start-up is not counted) and the grid's requests by method, if `proxy` counts."""

    def instant(cfg, data, device, on_epoch=None):
        from fmnist_ray.spec.result import RunResult  # in the trainer's process

        row = {"epoch": 1, "train_loss": 0.5, "train_acc": 0.8, "test_loss": 0.5,
               "test_acc": 0.8, "last_lr": cfg.lr, "seconds": 0.0, "images_per_s": 1.0}  # fmt: skip
        return RunResult(history=[row])

    tmp_path.mkdir(exist_ok=True)
    exp = experiment_file(tmp_path, seeds=tuple(range(RUNS)))
    plan = make_plan(load_experiments([exp]), uri)
    prepare(plan)
    if proxy is not None:
        proxy.reset()  # count the grid's requests only
    outcome = run_grid(plan, small, train_fn=instant, stream=io.StringIO())
    end = time.time()
    requests = dict(proxy.requests) if proxy is not None else {}
    first = min(run.span[0].timestamp() for run in read_tree([uri]).runs)
    return outcome, end - first, requests


def test_a_grid_lands_runs_on_s3_in_one_request_each_many_at_once(
    slow_s3, local_ray, small, tmp_path
):
    proxy, uri = slow_s3
    local_ray(num_cpus=2)
    outcome, _, requests = instant_grid(tmp_path, uri, small, proxy)
    most = proxy.most_in_flight
    assert outcome.exit_code == 0
    assert len(outcome.trained) == RUNS
    assert len(read_tree([uri]).runs) == RUNS
    print(f"{RUNS} runs landed on S3 at 20 ms: {requests}, most {most} in flight")
    # One PUT per run, two for the manifest (experiment.toml, environment.json); no per-run
    # look for a failure record the plan did not find.
    assert requests.get("PUT", 0) <= RUNS + 2
    assert requests.get("HEAD", 0) + requests.get("GET", 0) + requests.get("POST", 0) <= 4
    assert most >= 4
