"""README claims that no behaviour test covers: what cluster workers must have installed, and
where the README's commands write (never over the committed study report unless asked)."""

import json
import re
import subprocess
import sys
from pathlib import Path

from fmnist_ray.reporting import default_out_dir

REPO = Path(__file__).resolve().parents[1]
WORKER_NEEDS = {"torch", "ray", "pyarrow", "numpy", "pydantic", "rich"}  # README, `--address`
WORKER_SKIPS = {"torchvision", "matplotlib", "scipy", "typer"}


def test_workers_import_exactly_what_the_readme_says_they_need():
    """A worker unpickles the task from fmnist_ray.runner.driver and imports fmnist_ray.training.train in it."""
    probe = (
        "import json, sys; import fmnist_ray.runner.driver, fmnist_ray.training.train; "
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))
    assert WORKER_NEEDS <= loaded and not WORKER_SKIPS & loaded, (WORKER_NEEDS - loaded, loaded)
    readme = " ".join((REPO / "README.md").read_text().split())
    assert "torch, ray, pyarrow, numpy, pydantic and rich" in readme


def test_no_readme_command_writes_a_report_over_the_committed_one():
    """Only the study's regeneration command writes into results/report/, and it reads the
    study's 12 folders, not the whole of results/ (which may hold a user's own runs)."""
    readme = (REPO / "README.md").read_text().replace("\\\n", " ")
    commands = re.findall(r"fmnist-ray report [^`#\n]*", readme)
    assert len(commands) >= 4, commands
    writers = []
    for command in (" ".join(c.split()) for c in commands):
        words = command.split()
        given = words[words.index("--out") + 1] if "--out" in words else None
        out = Path(given) if given else default_out_dir([words[2]])
        if (REPO / out).resolve() == (REPO / "results" / "report").resolve():
            writers.append(command)
    assert writers == [
        "fmnist-ray report $(basename -s .toml experiments/study/*.toml | sed 's|^|results/|')"
        " --reference study_reference.csv --out results/report"
    ], writers
