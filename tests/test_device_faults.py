"""What a trainer does when the GPU fails it, shown on the CPU with injected errors (the GPU check,
benchmarks/gpu_check.sh, shows the same with real ones): out of memory during graph capture is
raised, not swallowed; a failed run is unreferenced before its memory goes back; a broken CUDA
context ends the process and its run is retried in a fresh one; a trainer that cannot start
sends its run to a whole GPU; and each run records its GPU share and how many shared its GPU."""

import functools
import gc
import io
import json
import os
import sys
import time
import weakref
from contextlib import contextmanager
from pathlib import Path

import pytest
import ray
import torch

from fmnist_ray.planning.plan import make_plan
from fmnist_ray.planning.sizing import OutOfDeviceMemory, TrainerCannotStart
from fmnist_ray.runner import trainer
from fmnist_ray.runner.driver import run_grid
from fmnist_ray.runner.trainer import Bench, cuda_index
from fmnist_ray.spec.config import RunConfig
from fmnist_ray.spec.grid import load_experiment
from fmnist_ray.store.results import read_failures, read_metadata
from fmnist_ray.training import steps
from fmnist_ray.training.device_errors import is_broken_context, is_out_of_memory
from fmnist_ray.training.models import build_model
from fmnist_ray.training.steps import WARMUP_STEPS, GraphedStep
from fmnist_ray.training.train import make_loss, make_optimizer, train_run

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # trainers call this file's code

OOM = "CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 15.77 GiB total capacity)"
ILLEGAL = "CUDA error: an illegal memory access was encountered"


# -- what an error means ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        torch.cuda.OutOfMemoryError(OOM),
        RuntimeError("CUDA error: out of memory\nCUDA kernel errors might be reported later"),
        RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
        RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"),
    ],
    ids=["allocator", "runtime", "cublas", "cudnn"],
)
def test_every_form_of_out_of_memory_is_recognised(error):
    assert is_out_of_memory(error)
    assert not is_broken_context(error)


def test_an_out_of_memory_hidden_behind_a_capture_error_is_recognised():
    try:
        try:
            raise torch.cuda.OutOfMemoryError(OOM)
        except RuntimeError as oom:
            capture = "CUDA error: operation failed due to a previous error during capture"
            raise RuntimeError(capture) from oom
    except RuntimeError as error:
        assert is_out_of_memory(error)


@pytest.mark.parametrize(
    "text", [ILLEGAL, "CUDA error: device-side assert triggered", "unspecified launch failure"]
)
def test_sticky_cuda_errors_break_the_context(text):
    assert is_broken_context(RuntimeError(text))
    assert not is_out_of_memory(RuntimeError(text))


def test_a_plain_error_is_neither():
    error = ValueError("mat1 and mat2 shapes cannot be multiplied (10x3 and 4x5)")
    assert not is_out_of_memory(error)
    assert not is_broken_context(error)


# -- the device a trainer picks ----------------------------------------------------------------


def test_a_trainer_picks_its_own_gpu_whether_or_not_ray_sets_cuda_visible_devices():
    assert cuda_index(["3"], "3") == 0  # Ray's default: only the assigned GPU is visible
    assert cuda_index(["5", "6"], "5,6") == 0
    assert cuda_index(["2"], "0,1,2,3") == 2  # the node's own list, the GPU's place in it
    assert cuda_index(["3"], None) == 3  # Ray told not to set it: every GPU is visible
    assert cuda_index(["3"], "") == 3


# -- graph capture, with torch's CUDA calls stood in for on the CPU -----------------------------


class FakeGraph:
    def replay(self):
        pass


@contextmanager
def capturing(monkeypatch, fail_with=None, streams=None):
    """torch.cuda's graph and stream calls replaced by CPU stand-ins: a capture that raises
    `fail_with` when the step runs inside it, and a count of the streams made."""
    monkeypatch.setattr(torch.cuda, "CUDAGraph", FakeGraph)
    monkeypatch.setattr(torch.cuda, "set_stream", lambda stream: None)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)

    @contextmanager
    def stream(side):
        yield

    class Stream:
        def __init__(self, device=None):
            if streams is not None:
                streams.append(self)

        def wait_stream(self, other):
            pass

    @contextmanager
    def graph(captured, stream=None):
        if fail_with is not None:
            raise fail_with
        yield

    monkeypatch.setattr(torch.cuda, "stream", stream)
    monkeypatch.setattr(torch.cuda, "Stream", Stream)
    default = object.__new__(Stream)  # made without counting: the default stream exists anyway
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: default)
    monkeypatch.setattr(torch.cuda, "graph", graph)
    monkeypatch.setattr(steps, "_SIDE_STREAMS", {})
    yield


def graphed_step(cfg: RunConfig) -> GraphedStep:
    model = build_model(cfg)
    return GraphedStep(model, make_loss(cfg), make_optimizer(cfg, model.parameters()), "cpu")


def batches(n: int, size: int):
    generator = torch.Generator().manual_seed(0)
    for _ in range(n):
        yield torch.rand(size, 1, 28, 28, generator=generator), torch.randint(0, 10, (size,))


def test_out_of_memory_during_capture_is_raised_not_swallowed(monkeypatch):
    step = graphed_step(RunConfig(model="fc"))
    with capturing(monkeypatch, fail_with=torch.cuda.OutOfMemoryError(OOM)):
        with pytest.raises(torch.cuda.OutOfMemoryError):
            for x, y in batches(WARMUP_STEPS + 1, 32):
                step(x, y)
    assert step.failed == {}


def test_a_failed_short_batch_capture_leaves_the_rest_graphed_and_says_which(monkeypatch):
    step = graphed_step(RunConfig(model="fc"))
    with capturing(monkeypatch):
        for x, y in batches(WARMUP_STEPS + 1, 32):
            step(x, y)
    assert step.mode == "cuda_graph"
    error = RuntimeError("CUDA error: operation not permitted when stream is capturing")
    with capturing(monkeypatch, fail_with=error), pytest.warns(UserWarning, match="capture failed"):
        for x, y in batches(WARMUP_STEPS + 1, 8):
            step(x, y)
    assert step.mode == "cuda_graph, eager for batch 8"
    assert list(step.graphs) == [32]


def test_warm_ups_share_one_side_stream_per_process(monkeypatch):
    made: list = []
    with capturing(monkeypatch, streams=made):
        for seed in range(5):  # five runs in one trainer, two batch shapes each
            step = graphed_step(RunConfig(model="fc", seed=seed))
            for x, y in [*batches(WARMUP_STEPS + 1, 32), *batches(WARMUP_STEPS + 1, 8)]:
                step(x, y)
    assert len(made) == 1


# -- a trainer's process, in this one -----------------------------------------------------------


@pytest.fixture
def bench(small):
    return Bench(small.subset(500, 100), 1, [], None)


def test_a_run_out_of_memory_is_unreferenced_before_its_memory_is_released(bench, monkeypatch):
    alive_at_release: list[bool] = []
    models: list[weakref.ref] = []

    def runs_out(cfg, data, device, on_epoch=None):
        model = build_model(cfg)
        models.append(weakref.ref(model))
        model.me = model  # a cycle, as graphs and optimizers make: only gc frees it
        raise torch.cuda.OutOfMemoryError(OOM)

    def release(device):
        gc.collect()
        alive_at_release.append(models[0]() is not None)

    monkeypatch.setattr(trainer, "release", release)
    bench.train_fn = runs_out
    with pytest.raises(OutOfDeviceMemory, match="CUDA out of memory") as raised:
        bench.train(RunConfig(model="fc"))
    assert alive_at_release == [False]
    assert raised.value.__context__ is None  # no torch exception rides along to the driver
    bench.train_fn = train_run
    assert bench.train(RunConfig(model="fc", epochs=1)).status == "ok"  # usable after


def test_a_broken_context_ends_the_process_and_a_plain_error_does_not(bench):
    exits: list[str] = []

    def exit_process(why):
        exits.append(why)
        raise SystemExit(70)

    bench.exit = exit_process

    def breaks(cfg, data, device, on_epoch=None):
        raise RuntimeError(ILLEGAL)

    bench.train_fn = breaks
    with pytest.raises(SystemExit):
        bench.train(RunConfig(model="fc"))
    assert exits == [ILLEGAL]

    def wrong(cfg, data, device, on_epoch=None):
        raise ValueError("a bug in this run")

    bench.train_fn = wrong
    with pytest.raises(ValueError, match="a bug in this run"):
        bench.train(RunConfig(model="fc"))
    assert exits == [ILLEGAL]


class Crowded:
    """Data whose copy to the device runs out of memory, as on a crowded GPU."""

    scaled = None  # as data for a GPU trainer: its images are copied to the device

    @property
    def train_images(self):
        raise torch.cuda.OutOfMemoryError(OOM)


def test_a_trainer_that_cannot_start_trains_nothing_and_says_why():
    bench = Bench(Crowded(), 1, [], None)
    with pytest.raises(TrainerCannotStart, match="CUDA out of memory"):
        bench.train(RunConfig(model="fc"))


# -- real trainers on real Ray ------------------------------------------------------------------


def note(log: Path, cfg, **fields) -> list[dict]:
    """Append this attempt (pid, GPU share, and `fields`) to the run's log; all its attempts."""
    share = ray.get_runtime_context().get_assigned_resources().get("GPU", 0.0)
    with (log / cfg.run_id).open("a") as out:
        out.write(json.dumps({"pid": os.getpid(), "share": share} | fields) + "\n")
    return [json.loads(line) for line in (log / cfg.run_id).read_text().splitlines()]


def grid(tmp_path: Path, data, text: str, train_fn, **options):
    (tmp_path / "exp.toml").write_text(text)
    plan = make_plan([load_experiment(tmp_path / "exp.toml")], tmp_path / "r")
    stream = io.StringIO()
    outcome = run_grid(plan, data, train_fn=train_fn, stream=stream, **options)
    return outcome, stream.getvalue(), tmp_path / "r" / "exp"


def breaks_first_time(log: Path, cfg, data, device, on_epoch=None):
    """Seed 1's first attempt breaks the CUDA context; seed 2's always does."""
    attempts = note(log, cfg)
    if cfg.seed == 2 or (cfg.seed == 1 and len(attempts) == 1):
        raise RuntimeError(ILLEGAL)
    return train_run(cfg, data, device, on_epoch=on_epoch)


def test_a_broken_context_ends_its_trainer_and_the_run_is_retried_in_a_fresh_one(
    tmp_path, local_ray, small
):
    local_ray(num_cpus=1)
    log = tmp_path / "log"
    log.mkdir()
    text = 'seeds = [0, 1, 2]\n[base]\nmodel = "fc"\nepochs = 1\n'
    outcome, printed, folder = grid(tmp_path, small.subset(500, 100), text,
                                    functools.partial(breaks_first_time, log), max_retries=1)  # fmt: skip
    seeds = {RunConfig(model="fc", epochs=1, seed=s).run_id: s for s in range(3)}
    pids = {seeds[p.name]: [json.loads(line)["pid"] for line in p.read_text().splitlines()]
            for p in log.iterdir()}  # fmt: skip
    assert len(pids[1]) == 2, printed
    assert pids[1][0] != pids[1][1]  # the retry ran in a fresh process
    assert len(pids[2]) == 2  # max_retries=1: two attempts, each in its own process
    assert len(set(pids[2])) == 2
    assert sorted(item.config.seed for item in outcome.trained) == [0, 1]
    [failure] = read_failures(folder)
    assert failure["config"]["seed"] == 2
    assert failure["attempts"] == 2


def cannot_start_once(log: Path, cfg, data, device, on_epoch=None):
    """The first trainer's first run finds it could not start (as Bench raises it)."""
    attempts = note(log, cfg)
    if not (log.parent / "refused").exists():
        (log.parent / "refused").write_text(str(attempts[-1]["pid"]))
        raise TrainerCannotStart(OOM)
    return train_run(cfg, data, device, on_epoch=on_epoch)


def test_a_trainer_that_cannot_start_is_stopped_and_its_run_goes_to_a_whole_gpu(
    tmp_path, local_ray, small
):
    local_ray(num_cpus=1, num_gpus=1)
    log = tmp_path / "log"
    log.mkdir()
    text = 'seeds = [0, 1, 2]\n[base]\nmodel = "fc"\nepochs = 1\n[resources]\ngpus = 0.5\n'
    outcome, printed, folder = grid(tmp_path, small.subset(500, 100), text,
                                    functools.partial(cannot_start_once, log))  # fmt: skip
    assert outcome.exit_code == 0 and len(outcome.trained) == 3, printed
    refused = int((tmp_path / "refused").read_text())
    attempts = [json.loads(line) for p in log.iterdir() for line in p.read_text().splitlines()]
    assert [a["pid"] for a in attempts].count(refused) == 1  # it trained nothing more
    assert sorted(a["share"] for a in attempts) == [0.5, 0.5, 0.5, 1.0]
    metas = [read_metadata(path) for path in (folder / "runs").glob("*.parquet")]
    assert sorted(m["retried_alone"] for m in metas) == [False, False, True]
    assert sorted(m["gpu_share"] for m in metas) == [0.5, 0.5, 1.0]


def together(log: Path, cfg, data, device, on_epoch=None):
    """Seeds 0 and 1 wait (up to a minute) until both have started: they share the GPU."""
    note(log, cfg)
    if cfg.seed < 2:
        deadline = time.monotonic() + 60
        while len(list(log.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    return train_run(cfg, data, device, on_epoch=on_epoch)


def test_each_run_records_its_gpu_share_and_how_many_shared_its_gpu(tmp_path, local_ray, small):
    local_ray(num_cpus=2, num_gpus=1)  # two trainers of half a GPU each: one GPU shared by two
    log = tmp_path / "log"
    log.mkdir()
    text = 'seeds = [0, 1]\n[base]\nmodel = "fc"\nepochs = 1\n[resources]\ngpus = 0.5\n'
    outcome, printed, folder = grid(tmp_path, small.subset(500, 100), text,
                                    functools.partial(together, log))  # fmt: skip
    assert outcome.exit_code == 0, printed
    metas = [read_metadata(path) for path in (folder / "runs").glob("*.parquet")]
    assert [m["gpu_share"] for m in metas] == [0.5, 0.5]
    assert [m["runs_on_gpu"] for m in metas] == [2, 2]
    assert [m["retried_alone"] for m in metas] == [False, False]
    assert len({m["trainer_pid"] for m in metas}) == 2
