"""`make_report`: read a results tree, analyse each experiment, check published references, and
write the figures, summary pages and index."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..spec.grid import Experiment
from ..spec.metrics import DEFAULT_EFFECT
from .analysis import summarize_experiment
from .document import render_html, render_markdown
from .figures import build_figures, overview_figure, save_figure
from .load import ExperimentFiles, default_out_dir, load_tree, read_reference
from .model import OVERVIEW, ExperimentReport, Reference
from .power import experiment_power, fill_correlations, planned_comparisons, study_holm
from .references import check_references, parse_references
from .settled import fill_settled
from .tables import index_blocks, summary_blocks


@dataclass
class ReportResult:
    """What `make_report` wrote, and the notes the CLI prints."""

    out_dir: Path
    index_path: Path  # index.html, the page to open first
    index_md: Path
    overview: list[Path]  # overview.png and .svg: one panel per experiment
    summaries: dict[str, list[Path]]  # experiment -> [summary.md, summary.html]
    figures: dict[str, list[Path]]  # experiment -> PNG and SVG files
    notes: list[str]
    experiments: dict[str, ExperimentReport] = field(repr=False)  # the numbers behind the files

    @property
    def files(self) -> list[Path]:
        """Every file written: the index pages, the overview, each experiment's pages and
        figures."""
        pages = [p for name, own in self.summaries.items() for p in own + self.figures[name]]
        return [self.index_path, self.index_md, *self.overview, *pages]


def analyze(
    paths: list[str | Path],
    references: list[Reference] | None = None,
    effect: float = DEFAULT_EFFECT,
) -> tuple[list[ExperimentReport], list[str]]:
    """Every experiment under `paths`, analysed (seeds needed for `effect`, Holm also across all
    of them) and checked against `references`; plus notes on what was skipped and on reference
    values that name no arm."""
    experiments, all_runs, notes = load_tree(paths)
    reports = [summarize_experiment(files, all_runs, effect) for files in experiments]
    fill_settled(reports, [files.experiment for files in experiments])
    study_holm(reports)
    fill_correlations(reports)
    for report in reports:
        notes += check_references(report, references or [])
    return reports, notes


def size_experiments(
    experiments: list[Experiment], results: str | Path, effect: float
) -> dict[str, ExperimentReport]:
    """Each experiment as the results under `results` have it so far (its folder there, if any,
    and its base case from anywhere), with `power` sized for `effect` over the arms the file
    plans: what `plan --seeds-for` prints. Raises ReportError when there are no results."""
    folders, all_runs, _ = load_tree([results])
    found = {files.name: files for files in folders}
    reports = {}
    for experiment in experiments:
        files = found.get(experiment.name) or ExperimentFiles(experiment.name, [], [], None)
        files = dataclasses.replace(files, experiment=experiment, notes=[])
        report = summarize_experiment(files, all_runs, effect)
        comparisons = planned_comparisons(experiment, report.base_config)
        report.power = experiment_power(report, effect, comparisons)
        reports[experiment.name] = report
    return reports


def load_reports(paths: list[str | Path]) -> list[ExperimentReport]:
    """Read every run under `paths` (one table) and analyse each experiment (no files written)."""
    return analyze(list(paths))[0]


def _reference_notes(reports: list[ExperimentReport], source: str, refs: list[Reference]) -> str:
    checks = [check for report in reports for check in report.references]
    if not checks:
        return f"reference {source}: no value matches an arm reported here; nothing checked"
    outside = sum(check.inside is False for check in checks)
    return (
        f"reference {source}: {len(checks)} of {len(refs)} values checked, {outside} outside "
        "our 95% prediction interval (listed in the index)"
    )


def _safe_name(name: str) -> str:
    return re.sub(r"[^\w.-]", "_", name) or "experiment"


def write_experiment(report: ExperimentReport, folder: Path) -> tuple[list[Path], list[Path]]:
    """One experiment's summary (Markdown, HTML) and figures in `folder`: (summaries, figures)."""
    folder.mkdir(parents=True, exist_ok=True)
    figures = [
        path
        for name, fig in build_figures(report).items()
        for path in save_figure(fig, folder, name)
    ]
    blocks = summary_blocks(report)
    summaries = [folder / "summary.md", folder / "summary.html"]
    summaries[0].write_text(render_markdown(blocks), encoding="utf-8")
    summaries[1].write_text(render_html(f"{report.name}: summary", blocks), encoding="utf-8")
    return summaries, figures


def make_report(
    paths: list[str | Path],
    out_dir: Path | None = None,
    reference: Path | None = None,
    effect: float = DEFAULT_EFFECT,
) -> ReportResult:
    """Figures and summary tables for every experiment under `paths`.

    `paths`: experiment folders (results/NAME), a results root holding them, or run files;
    local paths or URIs (s3://bucket/prefix...), read through pyarrow.fs.
    Writes, under `out_dir`: index.md/.html with overview.png/.svg, and per experiment
    <NAME>/summary.md/.html and <NAME>/<FIGURES>.{png,svg} (model.FIGURES). Default
    `out_dir` (see `default_out_dir`): report/ inside the one folder given, else inside the
    folders' common parent. `reference`: a CSV of published values (references.py) to check.
    `effect`: the difference in HEADLINE (a fraction for accuracy) to size seeds for.
    Raises ReportError when a path does not exist, there are no results, or the reference
    file is malformed.
    """
    paths = list(paths)
    refs = parse_references(read_reference(reference), str(reference)) if reference else None
    reports, notes = analyze(paths, refs, effect)
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(paths)
    summaries, figures, folders = {}, {}, {}
    for report in reports:
        folder = out_dir / _safe_name(report.name)
        folders[report.name] = folder.name
        summaries[report.name], figures[report.name] = write_experiment(report, folder)
    overview = save_figure(overview_figure(reports), out_dir, OVERVIEW)
    notes += [note for report in reports for note in report.notes]
    given = (Path(reference).name, refs) if refs is not None else None
    blocks = index_blocks(reports, folders, notes, given)
    (out_dir / "index.md").write_text(render_markdown(blocks), encoding="utf-8")
    (out_dir / "index.html").write_text(render_html("fmnist-ray report", blocks), encoding="utf-8")
    if given is not None:
        notes.append(_reference_notes(reports, *given))
    # After the index: the pages show these as warnings, the command line prints them as notes.
    notes += [f"warning: {report.device_warning}" for report in reports if report.device_warning]
    experiments = {report.name: report for report in reports}
    return ReportResult(
        out_dir,
        out_dir / "index.html",
        out_dir / "index.md",
        overview,
        summaries,
        figures,
        notes,
        experiments,
    )
