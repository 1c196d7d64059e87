"""A schema that can grow (docs/schema.md): a field added with a neutral value, in a copy of the
package, keeps the committed study's run ids and result files valid; other gaps stay invalid."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from fmnist_ray.store.results import InvalidResult, check_run

REPO = Path(__file__).resolve().parents[1]
ANCHOR = "    # LeNet-5 only: None for `fc`, filled with the base case for `lenet5`.\n"
NEW_FIELD = """    label_smoothing: NonNegativeFloat = option(
        0.0, "Cross-entropy only: label smoothing.", allowed="a number >= 0", neutral=0.0
    )
"""
OLD_RUN = REPO / "results" / "optimizer" / "runs" / "859ffaf356f9.parquet"  # the base case


@pytest.fixture(scope="module")
def grown(tmp_path_factory) -> Path:
    """A copy of the package with one new field, declared as a user would, in config.py only."""
    root = tmp_path_factory.mktemp("grown")
    package = root / "fmnist_ray"
    shutil.copytree(REPO / "fmnist_ray", package, ignore=shutil.ignore_patterns("__pycache__"))
    config = package / "spec" / "config.py"
    text = config.read_text()
    assert ANCHOR in text, "the test's anchor moved: update ANCHOR"
    config.write_text(text.replace(ANCHOR, NEW_FIELD + ANCHOR))
    return root


def run_with(package_root: Path, *args: str) -> subprocess.CompletedProcess:
    """Python with the copy first on the path (and as the working directory, which -c and -m
    put first too)."""
    env = os.environ | {"PYTHONPATH": str(package_root)}
    return subprocess.run(
        [sys.executable, *args], cwd=package_root, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def test_a_new_neutral_field_keeps_committed_runs_done(grown):
    check = run_with(grown, "-c", textwrap.dedent("""
        from fmnist_ray.spec.config import RunConfig
        assert RunConfig().label_smoothing == 0.0
        assert RunConfig().run_id == "859ffaf356f9"
        assert RunConfig(label_smoothing=0.1).run_id != "859ffaf356f9"
        print("grown")
    """))  # fmt: skip
    assert check.returncode == 0, check.stderr
    assert "grown" in check.stdout, check.stderr
    files = [
        str(REPO / "experiments" / "study" / f"{name}.toml") for name in ("optimizer", "scheduler")
    ]
    done = run_with(grown, "-m", "fmnist_ray", "plan", *files, "--results", str(REPO / "results"))
    assert done.returncode == 0, done.stderr
    assert "45 unique" in done.stdout, done.stdout
    assert "45 done, 0 pending, 0 failed" in done.stdout, done.stdout


def test_old_and_new_result_files_read_back_together(grown, tmp_path):
    """An old file gets the new column at its neutral value; a new file keeps its own value;
    `report` reads both."""
    runs = tmp_path / "mixed" / "runs"
    runs.mkdir(parents=True)
    shutil.copy(OLD_RUN, runs)
    script = textwrap.dedent(f"""
        from fmnist_ray.spec.config import RunConfig
        from fmnist_ray.store.results import SCHEMA, check_run, history_table, write_run
        from fmnist_ray.store.tree import read_results
        from fmnist_ray.reporting.load import load_tree

        old = check_run({str(runs / OLD_RUN.name)!r})
        assert old.schema.names == SCHEMA.names, old.schema.names
        assert set(old.column("label_smoothing").to_pylist()) == {{0.0}}
        cfg = RunConfig(epochs=1, label_smoothing=0.1)
        row = dict(epoch=1, train_loss=1.0, train_acc=0.5, test_loss=1.0, test_acc=0.5,
                   last_lr=0.001, seconds=1.0, images_per_s=1.0)
        write_run({str(runs.parent)!r}, history_table(cfg, [row], "ok", "mixed", {{}}))
        table = read_results([{str(tmp_path)!r}])
        assert sorted(set(table.column("label_smoothing").to_pylist())) == [0.0, 0.1]
        _, found, _ = load_tree([{str(tmp_path)!r}])
        print(sorted(run.config["label_smoothing"] for run in found))
    """)
    done = run_with(grown, "-c", script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[0.0, 0.1]", done.stdout


def test_a_file_lacking_a_column_without_neutral_value_is_invalid(tmp_path):
    table = pq.read_table(OLD_RUN)
    target = tmp_path / OLD_RUN.name
    pq.write_table(table.drop_columns(["weight_decay"]), target)
    with pytest.raises(InvalidResult, match="columns"):
        check_run(target)
    assert check_run(OLD_RUN).num_rows == 20  # the committed file itself reads back whole
