"""`settle` for real: comparisons and rounds read from experiment files and a results tree,
its --plan (nothing trained), and a tiny settle on the CPU end to end (fc, 1 epoch, 2,000
training images) interrupted by a real SIGINT mid-round and resumed by the same call, whose
decisions the report then shows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import UNDER_SIGNALS, cli, descendants, gone_within, takes_sigint, wait_for

from fmnist_ray.reporting.sequential import DIFFERENT, OPEN
from fmnist_ray.settling import check_records, comparisons, round_runs, setup, statuses_of
from fmnist_ray.spec.config import ConfigError, RunConfig
from fmnist_ray.spec.grid import load_experiment
from fmnist_ray.store.storage import locate

# Arm lr=0.1 is far from the base case (lr 0.001 is [base]); lr=0.0011 is next to it.
TINY = (
    'seeds = [0, 1]\n[base]\nmodel = "fc"\nepochs = 1\nlr = 0.001\n'
    "[[variants]]\nlr = 0.001\n[[variants]]\nlr = 0.1\n[[variants]]\nlr = 0.0011\n"
)
SETTLE = """
import json, sys
import fmnist_ray, fmnist_ray.training.data as data

real = data.load_fashion_mnist
data.load_fashion_mnist = lambda *a, **k: real(*a, **k).subset(train=2000, test=500)
try:
    done = fmnist_ray.settle(sys.argv[1], results=sys.argv[2], effect=20.0, max_seeds=6,
                             num_cpus=2, progress=False)
    print(json.dumps({"decisions": [s.verdict.decision for s in done.statuses]}))
except fmnist_ray.GridInterrupted as interrupted:
    print(json.dumps({"interrupted": str(interrupted)}))
"""


def write(folder: Path, text: str = TINY) -> Path:
    path = folder / "tiny.toml"
    path.write_text(text)
    return path


def test_comparisons_and_the_first_round_come_from_the_files(tmp_path):
    exp = load_experiment(str(write(tmp_path)))
    found = comparisons([exp], cap=6)
    assert [c.label for c in found] == ["lr=0.1", "lr=0.0011"]
    assert found[0].seeds == (0, 1, 2, 3, 4, 5)
    job = setup([exp], locate(str(tmp_path / "r")), 0.2, 0.05, 0.8, 6, 1)
    assert job.looks == (2, 3, 4, 5, 6) and job.design.comparisons == 2
    statuses = statuses_of(found, {}, job.design, job.looks)
    assert all(s.verdict.decision == OPEN and s.next_seeds == 2 for s in statuses)
    runs = round_runs(statuses)  # the base case once, though both arms need it
    base = RunConfig(model="fc", epochs=1, lr=0.001, seed=0)
    assert len(runs) == 6 and len({cfg.run_id for cfg in runs}) == 6
    assert base.run_id in {cfg.run_id for cfg in runs}


def test_a_resumed_settle_keeps_the_procedure_its_record_names(tmp_path):
    """A settle begun before Holm's recycling and the earlier equivalence spending existed
    goes on with the procedure it began with (its record has no 'recycle' key); a new one gets
    the defaults; a changed effect is still refused."""
    exp, root = load_experiment(str(write(tmp_path))), tmp_path / "r"
    fresh = setup([exp], locate(str(root)), 0.2, 0.05, 0.8, 6, 1)
    assert (fresh.design.futility, fresh.design.recycle) == ("hsd(4)", True)
    old = {key: value for key, value in fresh.record.items() if key != "recycle"}
    (root / "tiny").mkdir(parents=True)
    (root / "tiny" / "settle.json").write_text(json.dumps(old | {"futility": "pocock"}))
    resumed = setup([exp], locate(str(root)), 0.2, 0.05, 0.8, 6, 1)
    assert (resumed.design.futility, resumed.design.recycle) == ("pocock", False)
    assert check_records(resumed.root, resumed.names, resumed.record) == []
    changed = setup([exp], locate(str(root)), 0.3, 0.05, 0.8, 6, 1)
    with pytest.raises(ConfigError, match="another design"):
        check_records(changed.root, changed.names, changed.record)


def test_settle_plan_shows_rounds_and_trains_nothing(tmp_path):
    results = tmp_path / "r"
    done = cli("settle", write(tmp_path), "--results", results, "--max-seeds", "4", "--plan",
               "--slots", "2", "--effect", "20")  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.split()[:4] == ["1", "2", "2", "6"] for line in lines), done.stdout
    assert any(line.split()[:4] == ["3", "2", "4", "3"] for line in lines), done.stdout
    assert "at most 12 runs" in done.stdout and not results.exists()
    bad = cli("settle", write(tmp_path), "--results", results, "--max-seeds", "1", "--plan")
    assert bad.returncode == 2 and "--max-seeds" in bad.stderr and "Traceback" not in bad.stderr


def _runs(folder: Path) -> list[Path]:
    return sorted(folder.glob("tiny/runs/*.parquet"))


@pytest.mark.slow
@UNDER_SIGNALS
def test_a_tiny_settle_interrupted_and_resumed(tmp_path, data_dir):
    exp, results = write(tmp_path), tmp_path / "r"
    env = os.environ | {"FMNIST_DATA_DIR": str(data_dir)}
    driver = subprocess.Popen([sys.executable, "-c", SETTLE, exp, results], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        wait_for(lambda: _runs(results) or driver.poll() is not None, seconds=240)
        its_ray = descendants(driver.pid)
        assert takes_sigint(driver.pid)
        driver.send_signal(signal.SIGINT)
        out, err = driver.communicate(timeout=120)
    finally:
        driver.kill()
    assert gone_within(its_ray) == []
    assert driver.returncode == 0 and "Traceback" not in err, out + err
    assert "interrupted" in json.loads(out.strip().splitlines()[-1])
    kept = {path.stem for path in _runs(results)}
    assert 1 <= len(kept) < 6
    assert not (results / "tiny" / "settle.json").exists()
    written = {path.stem: path.stat().st_mtime_ns for path in _runs(results)}

    again = subprocess.run([sys.executable, "-c", SETTLE, exp, results], env=env,
                           capture_output=True, text=True, timeout=900)  # fmt: skip
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stdout + again.stderr
    decisions = json.loads(again.stdout.strip().splitlines()[-1])["decisions"]
    assert decisions[0] == DIFFERENT  # lr 0.1 against 0.001: far apart
    assert decisions[1] != DIFFERENT  # lr 0.0011: within 20 pp
    record = json.loads((results / "tiny" / "settle.json").read_text())
    assert record["comparisons"] == 2
    # The first round trains the first look's missing runs, and more when a comparison whose
    # first look was complete is still open there (which runs were kept depends on timing).
    assert record["rounds"][0]["trained"] >= 6 - len(kept)
    final = {path.stem: path.stat().st_mtime_ns for path in _runs(results)}
    assert kept <= set(final)
    # The interrupted round's runs were reused, not trained again.
    assert {run_id: final[run_id] for run_id in kept} == written
    report = cli("report", results / "tiny", "--out", tmp_path / "report")
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "report" / "tiny" / "summary.md").read_text()
    assert "## Settled by the sequential test" in page
    assert "| lr=0.1 | settled: " in page
    index = (tmp_path / "report" / "index.md").read_text()
    assert "## Settled by the sequential test" in index and "| tiny | lr=0.1 | settled: " in index
