"""The command line as a user meets it: real data end to end, one-line errors, exit code 2."""

import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest
from helpers import cli, cli_here

from fmnist_ray.spec.config import RunConfig
from fmnist_ray.store.results import SCHEMA, read_metadata


def test_train_fc_one_epoch_end_to_end(tmp_path, data_dir):
    done = cli(
        "train", "--model", "fc", "--epochs", "1", "--data-dir", data_dir, "--results", tmp_path
    )
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    accuracy = float(last.split("test accuracy ")[1].split(",")[0])
    assert accuracy >= 0.80, done.stdout
    cfg = RunConfig(model="fc", epochs=1)
    path = tmp_path / "train" / "runs" / f"{cfg.run_id}.parquet"
    assert str(path) in last
    table = pq.read_table(path)
    assert table.schema.names == SCHEMA.names
    assert table.num_rows == 1
    row = table.to_pylist()[0]
    assert row["test_acc"] == pytest.approx(accuracy, abs=1e-4)
    assert (row["model"], row["epochs"], row["lr"], row["activation"], row["status"]) == (
        "fc", 1, 0.001, None, "ok",
    )  # fmt: skip
    assert row["images_per_s"] > 0
    assert row["last_lr"] == 0.001
    meta = read_metadata(path)
    assert meta["config"] == cfg.model_dump(mode="json")
    assert meta["status"] == "ok"
    assert meta["device"] == "cpu"
    assert meta["versions"]["torch"]


@pytest.mark.slow
def test_every_option_reaches_the_config(tmp_path, data_dir):
    # A wide, fully specified LeNet-5: the parquet row must echo every option back.
    args = ["--model", "lenet5", "--activation", "relu", "--channels", "4,8,16", "--pooling", "max",
            "--batchnorm", "--dropout", "--scheduler", "steplr", "--step-size", "400", "--gamma",
            "0.9", "--optimizer", "rmsprop", "--momentum", "0.1", "--weight-decay", "0.0001",
            "--loss", "multi_margin", "--batch-size", "500", "--lr", "0.002", "--seed", "3",
            "--epochs", "1"]  # fmt: skip
    done = cli("train", *args, "--data-dir", data_dir, "--results", tmp_path)
    assert done.returncode == 0, done.stderr
    row = pq.read_table(next((tmp_path / "train" / "runs").glob("*.parquet"))).to_pylist()[0]
    assert {k: row[k] for k in RunConfig.model_fields} == {
        "model": "lenet5", "epochs": 1, "batch_size": 500, "lr": 0.002, "optimizer": "rmsprop",
        "momentum": 0.1, "weight_decay": 0.0001, "loss": "multi_margin", "activation": "relu",
        "pooling": "max", "batchnorm": True, "dropout": True, "channels": "4,8,16",
        "scheduler": "steplr", "step_size": 400, "gamma": 0.9, "seed": 3,
    }  # fmt: skip


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--activation", "sigmoid"], "error: --activation: 'sigmoid' is not allowed"),
        (["--lr", "0"], "error: --lr: 0.0 is not allowed: Input should be greater than 0"),
        (["--batch-size", "0"], "error: --batch-size: 0 is not allowed"),
        (["--channels", "6,0,120"], "error: --channels: 0 (position 2) is not allowed"),
        (["--channels", "6,16"], "error: --channels: '6,16' is not allowed"),
        (["--gamma", "0.9"], "error: --gamma: 0.9 is not allowed: needs scheduler 'steplr'"),
        (["--model", "fc", "--pooling", "max"], "error: --pooling: 'max' is not allowed"),
        (["--epochs", "many"], "error: Invalid value for '--epochs'"),
        (["--colour", "red"], "error: No such option: --colour"),
        (["--device", "tpu"], "error: --device: 'tpu' is not allowed"),
        (
            ["--data-dir", "/nonexistent", "--no-download"],
            "error: Fashion-MNIST not found in /nonexistent",
        ),  # noqa: E501
    ],
)
def test_mistakes_are_one_line_and_exit_2(args, expected, tmp_path):
    done = (
        cli_here("train", *args, "--epochs", "1", "--results", tmp_path)
        if "--epochs" not in args
        else cli_here("train", *args)
    )
    assert done.returncode == 2, done
    assert done.stderr.startswith(expected), done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert not (tmp_path / "train").exists()


def listed_commands(help_text: str) -> list[str]:
    """The command names in `--help`'s command list (rich's box or click's plain list)."""
    lines = help_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip("╭─ :").startswith("Commands"))
    block = []
    for line in lines[start + 1 :]:
        body = line.replace("│", " ").rstrip()
        if not body.strip() or line.lstrip().startswith("╰"):
            break
        block.append(body)
    indent = min(len(body) - len(body.lstrip()) for body in block)
    return [body.split()[0] for body in block if len(body) - len(body.lstrip()) == indent]


HELP_IMPORTS = """
import sys, time
from fmnist_ray.cli.commands import main
for args in ([], ["train"], ["plan"], ["run"], ["submit"], ["report"], ["export"]):
    sys.argv = ["fmnist-ray", *args, "--help"]
    try:
        main()
    except SystemExit as done:
        assert done.code == 0, (args, done.code)
heavy = ("torch", "ray", "matplotlib", "scipy", "pyarrow", "pandas")
print("heavy:", sorted(name for name in heavy if name in sys.modules), file=sys.stderr)
"""


def timed(*command) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    return time.perf_counter() - start, done


def test_help_is_quick_and_lists_commands():
    seconds, done = timed(sys.executable, "-m", "fmnist_ray", "--help")
    assert done.returncode == 0
    assert listed_commands(done.stdout) == [
        "train",
        "plan",
        "run",
        "settle",
        "submit",
        "report",
        "export",
    ]
    # Quick: every command's --help without loading a heavy library, and the top-level help
    # faster than importing torch alone (measured beside it, so a busy machine slows both).
    heavy = subprocess.run([sys.executable, "-c", HELP_IMPORTS], capture_output=True, text=True,
                           timeout=120)  # fmt: skip
    assert heavy.returncode == 0, heavy.stderr
    assert heavy.stderr.strip().splitlines()[-1] == "heavy: []"
    torch_seconds, imported = timed(sys.executable, "-c", "import torch")
    assert imported.returncode == 0, (seconds, torch_seconds)
    assert seconds < torch_seconds, (seconds, torch_seconds)


def test_submit_lends_runs_options_and_passes_them_on_as_run_parses_them():
    import typer

    from fmnist_ray.cli.commands import app
    from fmnist_ray.cli.options import as_arguments

    commands = typer.main.get_command(app).commands
    run, submit = commands["run"], commands["submit"]
    # Every option of run reaches submit (declared once, on run) but those about the local Ray;
    # submit's --address is its own (the dashboard).
    assert {p.name for p in run.params} - {p.name for p in submit.params} == {
        "num_cpus",
        "num_gpus",
    }
    values = {"results": "s3://b/x", "force": True, "download": False, "retries": 3,
              "gpus_per_run": 0.5, "data_dir": None}  # fmt: skip
    argv = as_arguments(run, values)
    assert argv == ["--gpus-per-run", "0.5", "--results", "s3://b/x", "--force",
                    "--no-download", "--retries", "3"]  # fmt: skip
    parsed = run.make_context("run", ["x.toml", *argv]).params
    assert {name: parsed[name] for name in values} == values


def test_train_help_shows_every_run_option():
    done = cli_here("train", "--help")
    assert done.returncode == 0
    for name in RunConfig.model_fields:
        assert "--" + name.replace("_", "-") in done.stdout


LEAVING = """
import atexit, ctypes, sys, threading, time
from fmnist_ray.cli.leaving import console
# What a native library's static destructor does when it finds a thread still joinable: the C++
# runtime registers static destructors with __cxa_atexit, and this one aborts (SIGABRT).
libc = ctypes.CDLL(None)
libc.__cxa_atexit(ctypes.cast(libc.abort, ctypes.c_void_p), None, None)
atexit.register(lambda: print("atexit ran", flush=True))
def late():
    time.sleep(0.5)
    print("thread done")
threading.Thread(target=late).start()
sys.argv = ["fmnist-ray", *sys.argv[1:]]
console()
"""


@pytest.mark.parametrize("args, code", [(["--help"], 0), (["run", "missing.toml"], 2)])
def test_the_command_leaves_with_its_code_after_pythons_shutdown_and_before_native_teardown(
    args, code, tmp_path
):
    """Native teardown that aborts (what Arrow's thread pool did to 1.6% of reruns) cannot turn a
    finished command's exit code into 134, and Python's own shutdown still runs in its order:
    threads joined, then atexit functions, with every byte of output delivered."""
    done = subprocess.run([sys.executable, "-c", LEAVING, *args], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)  # fmt: skip
    assert done.returncode == code, done.stderr
    assert done.stdout.rstrip().endswith("thread done\natexit ran")
    if code == 0:
        assert "Usage: fmnist-ray" in done.stdout
    else:
        assert done.stderr.startswith("error:")
