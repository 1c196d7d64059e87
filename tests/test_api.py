"""The Python API as a notebook meets it: a real grid planned, trained and loaded in this process
(on one Ray for the module), a real SIGINT to a driver running it, errors raised with the CLI's
`error:` lines, the CLI's defaults, and the README's example run as written."""

import inspect
import io
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import ray
import typer
from helpers import (
    REPO,
    UNDER_SIGNALS,
    cli,
    descendants,
    experiment_file,
    gone_within,
    results_of,
    takes_sigint,
    wait_for,
)

import fmnist_ray
from fmnist_ray import api
from fmnist_ray.cli.commands import app
from fmnist_ray.cli.options import as_arguments
from fmnist_ray.runner import progress
from fmnist_ray.spec.config import RunConfig
from fmnist_ray.store.results import SCHEMA, check_run


def test_plan_run_and_load_a_grid_in_process(local_ray, tmp_path, small, monkeypatch, capsys):
    """Two fc runs of one epoch (on 2,000 training images: the data loader is the only stand-in)
    planned, trained quietly, reused on a second call, and read back as one table."""
    local_ray(num_cpus=2)  # `run` uses the Ray this process is connected to, and leaves it
    monkeypatch.setattr(
        "fmnist_ray.training.data.load_fashion_mnist", lambda *args, **kwargs: small
    )
    exp, results = experiment_file(tmp_path), tmp_path / "results"
    view = fmnist_ray.plan(exp, results=str(results))
    assert len(view.plan.todo) == 2
    assert "2 pending" in view.text
    assert view.text + "\n" == cli("plan", exp, "--results", results).stdout  # the CLI's text
    capsys.readouterr()
    outcome = fmnist_ray.run(exp, results=str(results), progress=False)
    assert capsys.readouterr().out == ""  # quiet
    ids = {RunConfig(model="fc", epochs=1, seed=seed).run_id for seed in (0, 1)}
    assert outcome.ok
    assert {run.run_id for run in outcome.trained} == ids
    assert outcome.reused == outcome.failed == outcome.cancelled == ()
    for run in outcome.trained:
        assert run.status == "ok" and run.paths == (
            str(results / "exp/runs" / f"{run.run_id}.parquet"),
        )
        assert check_run(run.paths[0]).num_rows == 1
        assert 0 < run.final["test_acc"] < 1
    assert ray.is_initialized()  # the caller's Ray, left running
    again = fmnist_ray.run(exp, results=str(results))
    assert again.trained == ()
    assert {run.run_id for run in again.reused} == ids
    assert [run.paths for run in again.reused] == [run.paths for run in sorted(
        outcome.trained, key=lambda run: run.config.seed)]  # fmt: skip
    assert "nothing to train: all 2 runs of exp are done" in capsys.readouterr().out
    table = fmnist_ray.load(results)
    assert table.schema.names == SCHEMA.names
    assert set(table.column("run_id").to_pylist()) == ids
    assert fmnist_ray.load(results, experiments=["exp"]).equals(table)
    assert fmnist_ray.load(results, experiments=[exp]).num_rows == 2  # a file names it too
    assert sorted(table.to_pandas()["seed"]) == [0, 1]  # pandas: a test dependency's


# A mistake per case: (API function, arguments, options); EXP, BAD, ROOT, NODATA are paths.
MISTAKES = {
    "retries": ("run", ["EXP"], {"results": "ROOT", "retries": -1}),
    "experiment file": ("plan", ["BAD"], {}),
    "no results": ("report", ["ROOT"], {}),
    "effect": ("report", ["EXP"], {"effect": 0}),
    "no data": ("run", ["EXP"], {"results": "ROOT", "data_dir": "NODATA", "download": False}),
}


@pytest.mark.parametrize("name", MISTAKES)
def test_mistakes_raise_the_clis_error_lines(tmp_path, name):
    """Raised, never an exit; the message is what the CLI prints after `error: `, line by line
    (the CLI's arguments spelled from the same options by its own declarations)."""
    paths = {"EXP": experiment_file(tmp_path), "ROOT": tmp_path / "root", "NODATA": tmp_path / "no",
             "BAD": experiment_file(tmp_path, 'lr = 0\nmodel = "svm"', seeds=None, name="bad")}  # fmt: skip
    paths["ROOT"].mkdir()
    function, arguments, options = MISTAKES[name]
    arguments = [str(paths[a]) for a in arguments]
    options = {key: str(paths[v]) if v in paths else v for key, v in options.items()}
    with pytest.raises(fmnist_ray.FmnistRayError) as raised:
        getattr(fmnist_ray, function)(*arguments, **options)
    command = typer.main.get_command(app).commands[function]  # type: ignore[attr-defined]
    done = cli(function, *arguments, *as_arguments(command, options))
    assert done.returncode == 2, done
    assert done.stdout == "", done
    assert done.stderr == "".join(f"error: {line}\n" for line in raised.value.lines)
    assert str(raised.value) == "\n".join(raised.value.lines)
    if name == "experiment file":
        assert len(raised.value.lines) == 2
        assert isinstance(raised.value, fmnist_ray.ConfigError)


LIGHT_IMPORT = """
import sys
from fmnist_ray import load, plan, report, run
heavy = ("torch", "ray", "matplotlib", "scipy", "pyarrow", "pandas")
print(sorted(name for name in heavy if name in sys.modules))
import fmnist_ray, fmnist_ray.planning.plan, fmnist_ray.reporting, fmnist_ray.exporting  # the parts
print(fmnist_ray.plan is plan and fmnist_ray.report is report, callable(fmnist_ray.plan))
"""


def test_the_api_imports_light_and_keeps_its_names():
    done = subprocess.run([sys.executable, "-c", LIGHT_IMPORT], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.stdout.splitlines() == ["[]", "True True"], done.stderr


def test_load_says_what_is_missing(tmp_path):
    with pytest.raises(fmnist_ray.FmnistRayError, match="no such file or folder"):
        fmnist_ray.load(tmp_path / "missing")
    with pytest.raises(fmnist_ray.FmnistRayError, match="no experiment nope here"):
        fmnist_ray.load(tmp_path, experiments=["nope"])
    assert fmnist_ray.load(tmp_path).num_rows == 0


def test_every_option_has_the_clis_default():
    """Each CLI option of plan, run and report is a keyword of the API function of that name,
    with the same default; the API adds only `progress`."""
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    for name in ("plan", "run", "report"):
        keywords = inspect.signature(getattr(api, name)).parameters
        options = {param.name: param for param in commands[name].params}
        assert set(keywords) - set(options) <= {"progress"}
        assert set(options) <= set(keywords)
        for option, param in options.items():
            default = keywords[option].default
            if default is inspect.Parameter.empty:
                assert param.required, (name, option)
            else:
                assert param.default == default, (name, option)
                assert not param.required, (name, option)
    train = {param.name: param for param in commands["train"].params}
    assert train["results"].default == inspect.signature(api.run).parameters["results"].default


def test_progress_is_live_in_a_notebook_and_never_when_quiet(monkeypatch):
    """In Jupyter (rich's check says so) the notebook's own output gets rich's live display when
    ipywidgets is there to draw it; plain lines without it, and nothing live when quiet."""
    assert progress.live_console(io.StringIO()) is None  # a log
    monkeypatch.setattr("rich.console._is_jupyter", lambda: True)
    assert progress.live_console(sys.stdout) is None or _has_ipywidgets()
    real = progress.importlib.util.find_spec
    monkeypatch.setattr(progress.importlib.util, "find_spec",
                        lambda name, *rest: object() if name == "ipywidgets" else real(name, *rest))  # fmt: skip
    console = progress.live_console(sys.stdout)
    assert console is not None
    assert console.is_jupyter
    assert progress.live_console(api._Printer(progress=False).stream) is None


def _has_ipywidgets() -> bool:
    import importlib.util

    return importlib.util.find_spec("ipywidgets") is not None


INTERRUPTED_NOTEBOOK = """
import json, sys
import fmnist_ray

try:
    fmnist_ray.run(sys.argv[1], results=sys.argv[2], num_cpus=1, progress=False)
except fmnist_ray.GridInterrupted as interrupted:
    outcome = interrupted.outcome
    print(json.dumps({"message": str(interrupted), "exit_code": outcome.exit_code,
                      "trained": {run.run_id: run.paths for run in outcome.trained},
                      "cancelled": [run.run_id for run in outcome.cancelled],
                      "torch_in_driver": "torch" in sys.modules}))
"""


@pytest.mark.slow
@UNDER_SIGNALS
def test_ctrl_c_mid_grid_keeps_finished_runs_and_raises(tmp_path, data_dir):
    """SIGINT to a Python process running `fmnist_ray.run` (as Jupyter's "interrupt the kernel"
    sends it) once the first of three runs has landed: that run is kept whole, the pending
    ones are cancelled and leave no file, and the call raises GridInterrupted saying so. The
    driver never imported torch: results come back as plain values (a driver that unpickled
    torch types would load it, seconds and hundreds of MB; inside a Ray Job it crashed)."""
    exp, results = experiment_file(tmp_path, seeds=(0, 1, 2)), tmp_path / "r"
    driver = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED_NOTEBOOK, exp, results],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=os.environ | {"FMNIST_DATA_DIR": str(data_dir)},
    )  # fmt: skip
    try:
        wait_for(lambda: results_of(results / "exp") or driver.poll() is not None, seconds=240)
        its_ray = descendants(driver.pid)
        assert takes_sigint(driver.pid)
        driver.send_signal(signal.SIGINT)
        out, err = driver.communicate(timeout=120)
    finally:
        driver.kill()
    assert gone_within(its_ray) == []
    assert driver.returncode == 0, out + err
    assert "Traceback" not in err, out + err
    said = json.loads(out.strip().splitlines()[-1])
    assert said["message"] == "interrupted (SIGINT): finished runs are kept; run the same " \
        "command to resume." and said["exit_code"] == 130  # fmt: skip
    kept = {path.stem for path in results_of(results / "exp")}
    assert kept == set(said["trained"])
    assert 1 <= len(kept) < 3
    assert len(said["cancelled"]) == 3 - len(kept)
    assert not kept & set(said["cancelled"])
    assert all(check_run(path).num_rows == 1 for path in results_of(results / "exp"))
    assert said["torch_in_driver"] is False
    assert sorted(p.name for p in (results / "exp" / "runs").iterdir()) == sorted(
        f"{run_id}.parquet" for run_id in kept)  # fmt: skip
    assert not (results / "exp" / ".lock").exists()


def readme_example() -> str:
    """The README's "From Python" example: the first Python block of that section."""
    section = (REPO / "README.md").read_text().split("## From Python", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_readme_example_runs_as_written(local_ray, tmp_path, data_dir, monkeypatch, capsys):
    local_ray(num_cpus=2)  # `run` uses the Ray this process is connected to, and leaves it
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FMNIST_DATA_DIR", str(data_dir))
    names: dict = {"__name__": "__main__"}
    exec(compile(readme_example(), "README.md", "exec"), names)
    out = capsys.readouterr().out
    assert len(names["outcome"].trained) == 2
    assert "2 trained:" in out
    assert names["table"].num_rows == 2
    assert len(results_of(tmp_path / "results/tiny")) == 2
    assert all(Path(path).is_file() for path in names["written"].files)
    assert names["written"].index_path == tmp_path / "results/tiny/report/index.html"
