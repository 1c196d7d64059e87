"""Claims of the README and docs/ that no behaviour test covers: what cluster workers must have
installed, and where the documented commands write (never over the committed study report unless
asked); and that every page of docs/ is reachable from the README."""

import json
import re
import subprocess
import sys
from pathlib import Path

from fmnist_ray.reporting import default_out_dir

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]  # the README and docs/
WORKER_NEEDS = {"torch", "ray", "pyarrow", "numpy", "pydantic", "rich"}  # docs/clusters.md
WORKER_SKIPS = {"torchvision", "matplotlib", "scipy", "typer"}


def documented() -> str:
    """The README and every page of docs/, one text."""
    return "\n".join(page.read_text() for page in PAGES)


def test_workers_import_exactly_what_the_readme_says_they_need():
    """A worker unpickles the task from fmnist_ray.runner.driver and imports fmnist_ray.training.train in it."""
    probe = (
        "import json, sys; import fmnist_ray.runner.driver, fmnist_ray.training.train; "
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))
    assert WORKER_NEEDS <= loaded, (WORKER_NEEDS - loaded, loaded)
    assert not WORKER_SKIPS & loaded, (WORKER_NEEDS - loaded, loaded)
    docs = " ".join(documented().split())
    assert "torch, ray, pyarrow, numpy, pydantic and rich" in docs


def test_no_readme_command_writes_a_report_over_the_committed_one():
    """Only the study's regeneration command writes into results/report/, and it reads the
    study's 12 folders, not the whole of results/ (which may hold a user's own runs)."""
    docs = documented().replace("\\\n", " ")
    commands = re.findall(r"fmnist-ray report [^`#\n]*", docs)
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


def test_every_docs_page_is_linked_from_the_readme():
    readme = (REPO / "README.md").read_text()
    linked = set(re.findall(r"\]\((docs/[^)#]+\.md)", readme))
    pages = {f"docs/{page.name}" for page in (REPO / "docs").glob("*.md")}
    assert pages - linked == set(), pages - linked


def test_every_test_the_guarantees_name_exists():
    """docs/guarantees.md names the test behind each line: each is a test function of tests/."""
    named = set(
        re.findall(
            r"`(?:tests/\w+\.py::)?(test_\w+)`", (REPO / "docs" / "guarantees.md").read_text()
        )
    )
    defined = set(re.findall(r"^def (test_\w+)\(", source_of_the_tests(), re.M))
    assert len(named) >= 15, named
    assert named - defined == set(), named - defined


def source_of_the_tests() -> str:
    return "\n".join(path.read_text() for path in sorted((REPO / "tests").glob("test_*.py")))
