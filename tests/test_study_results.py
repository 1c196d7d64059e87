"""The committed study (results/): every run done and valid, the committed report regenerates
from its 12 folders unchanged, and the README's study section is what the report and runs give."""

import re
import subprocess
import sys
from pathlib import Path

from fmnist_ray.planning.plan import make_plan
from fmnist_ray.reporting.build import make_report
from fmnist_ray.spec.grid import load_experiments

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results"
REPORT = RESULTS / "report"
STUDY_FILES = sorted((REPO / "experiments" / "study").glob("*.toml"))


def test_every_study_run_is_done_and_valid():
    plan = make_plan(load_experiments(STUDY_FILES), RESULTS)
    assert plan.planned == 141
    assert len(plan.runs) == 123
    assert [run.run_id for run in plan.todo] == []
    assert plan.to_file == []
    assert plan.corrupt == []


def test_the_committed_report_regenerates_unchanged(tmp_path):
    study = [RESULTS / path.stem for path in STUDY_FILES]  # never a user's own results/NAME
    make_report(study, out_dir=tmp_path, reference=REPO / "study_reference.csv")
    committed = sorted(p.relative_to(REPORT) for p in REPORT.rglob("*.md"))
    assert committed, "no committed report"
    for page in committed:
        assert (tmp_path / page).read_text() == (REPORT / page).read_text(), page


def test_the_readme_study_tables_are_the_reports():
    done = subprocess.run([sys.executable, "docs/readme_study.py", "--check"], cwd=REPO,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_check_fails_when_the_readme_prose_disagrees_with_the_runs(tmp_path):
    """Not only the copied tables: a judgement of the prose that the runs do not give (the
    study's first conclusion said the other way round) fails the check."""
    readme = (REPO / "README.md").read_text()
    judged = re.search(r'(\*"[^"]+"\*) (holds|is not established)', readme)
    assert judged, "no judged conclusion in the README"
    flipped = "is not established" if judged[2] == "holds" else "holds"
    edited = tmp_path / "README.md"
    edited.write_text(readme.replace(judged[0], f"{judged[1]} {flipped}", 1))
    done = subprocess.run([sys.executable, "docs/readme_study.py", "--check", "--readme", edited],
                          cwd=REPO, capture_output=True, text=True)  # fmt: skip
    assert done.returncode != 0
    assert "differs" in done.stdout + done.stderr


def test_the_committed_report_says_how_sure_it_is():
    """Every experiment's summary gives the difference its seeds detect and the seeds 0.5 pp
    needs; the index gives Holm over all the study's comparisons and the published offset."""
    for path in STUDY_FILES:
        page = (REPORT / path.stem / "summary.md").read_text()
        assert re.search(r"- detectable with \d+ seeds per arm \(80% power", page), path.stem
        assert "- seeds per arm to detect 0.50 pp: " in page, path.stem
    index = (REPORT / "index.md").read_text()
    assert "| Holm p, all 39 |" in index
    assert "| test accuracy | 44 | +0.20 pp | [+0.09, +0.31] | 31 | 13 |" in index
