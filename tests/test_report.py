"""Tests of the report on hand-made Parquet results (no torch, no ray): statistics as the pages
show them, verdicts, base-case lookup, references, figures, and pages whose links all resolve."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from matplotlib.text import Text
from scipy import stats

from fmnist_ray.reporting import ReportError, default_out_dir, load_reports, make_report
from fmnist_ray.reporting.figures import (
    arm_colors,
    build_figures,
    curve_figure,
    final_figure,
    grid_roles,
    overview_figure,
)
from fmnist_ray.reporting.figures.common import REFERENCE_LABEL
from fmnist_ray.reporting.model import BETTER, INCOMPLETE, NOT_SIGNIFICANT, WORSE
from fmnist_ray.spec.config import RunConfig
from fmnist_ray.store.results import history_table, write_failure, write_run

REPO = Path(__file__).resolve().parents[1]
STUDY_REFERENCE = REPO / "study_reference.csv"
EPOCHS = 3
BASE_ACC = [0.880, 0.884, 0.889]  # lenet_baseline, seeds 0..2
LR_ACC = {0.0004: [0.870, 0.874, 0.871], 0.0016: [0.889, 0.897, 0.891]}
LR_LOSS = {0.0004: [0.40, 0.42, 0.41], 0.0016: [0.30, 0.31, 0.29]}
DIVERGING_LR = 0.0064  # seed 0 ok at 0.860, seed 1 diverges, seed 2 fails
MINUS = "\u2212"


def history(cfg: RunConfig, acc: float, loss: float = 0.3, diverge: bool = False) -> list[dict]:
    """Made-up epochs ending exactly at `acc` and `loss`; a diverged run stops at a NaN loss."""
    rows = []
    for epoch in range(1, cfg.epochs + 1):
        behind = (cfg.epochs - epoch) / cfg.epochs  # 0 at the last epoch
        train_loss = math.nan if diverge and epoch == 2 else loss * (1 + 2 * behind)
        rows.append(
            {
                "epoch": epoch,
                "train_loss": train_loss,
                "train_acc": acc + 0.01 - 0.1 * behind,
                "test_loss": train_loss,
                "test_acc": acc - 0.1 * behind,
                "last_lr": cfg.lr,
                "seconds": 2.0,
                "images_per_s": 30000.0,
            }
        )
        if diverge and epoch == 2:
            break
    return rows


def add_run(exp_dir: Path, cfg: RunConfig, acc: float, loss: float = 0.3, diverge=False) -> None:
    status = "diverged" if diverge else "ok"
    table = history_table(cfg, history(cfg, acc, loss, diverge), status, exp_dir.name, {})
    write_run(exp_dir, table)


def write_experiment_file(exp_dir: Path, text: str) -> None:
    exp_dir.mkdir(parents=True, exist_ok=True)
    (exp_dir / "experiment.toml").write_text(text)


def build_study(root: Path) -> Path:
    """lenet_baseline (the base case), learning_rate (no base inside; diverged, failed and
    partial), scheduler (two axes), each with its experiment.toml."""
    base_dir = root / "lenet_baseline"
    write_experiment_file(base_dir, "seeds = [0, 1, 2]\n[base]\nepochs = 3\n")
    for seed, acc in enumerate(BASE_ACC):
        add_run(base_dir, RunConfig(epochs=EPOCHS, seed=seed), acc, loss=0.35)

    lr_dir = root / "learning_rate"
    write_experiment_file(
        lr_dir,
        'description = "lr sweep <fast>"\nseeds = [0, 1, 2]\n[base]\nepochs = 3\n'
        "[grid]\nlr = [0.0004, 0.0016, 0.0064]\n",
    )
    for lr, accs in LR_ACC.items():
        for seed, acc in enumerate(accs):
            add_run(lr_dir, RunConfig(epochs=EPOCHS, lr=lr, seed=seed), acc, LR_LOSS[lr][seed])
    add_run(lr_dir, RunConfig(epochs=EPOCHS, lr=DIVERGING_LR, seed=0), 0.860, loss=0.5)
    add_run(lr_dir, RunConfig(epochs=EPOCHS, lr=DIVERGING_LR, seed=1), 0.5, diverge=True)
    error = "Traceback (most recent call last):\n  File ...\nRuntimeError: CUDA out of memory"
    write_failure(lr_dir, RunConfig(epochs=EPOCHS, lr=DIVERGING_LR, seed=2), error)

    scheduler_dir = root / "scheduler"
    write_experiment_file(
        scheduler_dir,
        'seeds = [0, 1]\n[base]\nepochs = 3\nscheduler = "steplr"\ngamma = 0.9\n'
        "[grid]\nlr = [0.001, 0.01]\nstep_size = [100, 400, 1600]\n",
    )
    for lr in (0.001, 0.01):
        for step_size in (100, 400, 1600):
            for seed in (0, 1):
                cfg = RunConfig(
                    epochs=EPOCHS, lr=lr, scheduler="steplr", step_size=step_size, gamma=0.9,
                    seed=seed,
                )  # fmt: skip
                acc = 0.88 + (0.01 if lr == 0.001 else 0) + step_size / 1e6 + seed / 1000
                add_run(scheduler_dir, cfg, acc)
    return root


def build_optimizer(exp_dir: Path, accs: dict[str, list[float]], losses=None) -> Path:
    """An 'optimizer' experiment (3 seeds, base case adam) with the given final accuracies."""
    write_experiment_file(
        exp_dir, "seeds = [0, 1, 2]\n[base]\nepochs = 3\n[grid]\noptimizer = " + str(list(accs))
    )
    for optimizer, values in accs.items():
        for seed, acc in enumerate(values):
            loss = losses[optimizer][seed] if losses else 0.3
            add_run(exp_dir, RunConfig(epochs=EPOCHS, optimizer=optimizer, seed=seed), acc, loss)
    return exp_dir


CLEAR = {  # rmsprop clearly above adam, sgd clearly below (Welch; the paired test beside it)
    "adam": [0.880, 0.884, 0.889],
    "sgd": [0.800, 0.810, 0.805],
    "rmsprop": [0.900, 0.905, 0.908],
}
CLEAR_LOSS = {"adam": [0.15, 0.16, 0.17], "sgd": [0.60, 0.65, 0.62], "rmsprop": [0.15, 0.155, 0.16]}
LEVEL = {  # every arm within seed noise of adam
    "adam": [0.880, 0.884, 0.889],
    "sgd": [0.889, 0.878, 0.886],
    "rmsprop": [0.884, 0.880, 0.890],
}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The study's results tree and one full report over it (rendering is the slow part)."""
    root = build_study(tmp_path_factory.mktemp("study") / "results")
    return root, make_report([root], reference=STUDY_REFERENCE)


@pytest.fixture(scope="module")
def clear(tmp_path_factory):
    exp_dir = build_optimizer(tmp_path_factory.mktemp("clear") / "optimizer", CLEAR, CLEAR_LOSS)
    return make_report([exp_dir], reference=STUDY_REFERENCE)


def arm(report, label):
    return next(a for a in report.arms if a.label == label)


def signed_cell(value: float) -> str:
    return f"{value:+.2f}".replace("-", MINUS)


def figure_texts(fig) -> str:
    return "\n".join(t.get_text() for t in fig.findobj(Text))


# ---------------------------------------------------------------------------- statistics as shown


def test_welch_comparison_and_holm_match_hand_computation(study):
    _, result = study
    report = result.experiments["learning_rate"]
    best = arm(report, "lr=0.0016")
    accs, base = np.array(LR_ACC[0.0016]), np.array(BASE_ACC)
    half = stats.t.ppf(0.975, 2) * accs.std(ddof=1) / math.sqrt(3)
    assert best.headline.n == 3 and best.headline.mean == pytest.approx(accs.mean())
    assert (best.headline.ci_low, best.headline.ci_high) == pytest.approx(
        (accs.mean() - half, accs.mean() + half)
    )
    # Same seeds 0..2 as the borrowed base case, but the default is Welch's two-sample test.
    pairs = stats.ttest_ind(accs, base, equal_var=False)
    low, high = pairs.confidence_interval()
    other = stats.ttest_ind(LR_ACC[0.0004], base, equal_var=False).pvalue  # the other tested arm
    # Holm by hand for m = 2: the smaller p doubles; the larger keeps its value, never below that.
    smaller, larger = sorted([pairs.pvalue, other])
    holm = 2 * smaller if pairs.pvalue == smaller else max(2 * smaller, larger)
    c = best.comparison
    assert c.test == "Welch t" and c.p_value == pytest.approx(pairs.pvalue)
    assert best.paired.p_value == pytest.approx(stats.ttest_rel(accs, base).pvalue)
    assert (c.diff_low, c.diff_high) == pytest.approx((low, high))
    assert c.p_adjusted == pytest.approx(holm) and c.p_adjusted > 0.05
    assert best.verdict == NOT_SIGNIFICANT
    assert best.fit.mean == pytest.approx(np.mean(LR_LOSS[0.0016]))

    row = (
        f"| lr=0.0016 | 3 | {np.mean(LR_LOSS[0.0016]):.4f} | {accs.mean() * 100:.2f} | "
        f"[{(accs.mean() - half) * 100:.2f}, {(accs.mean() + half) * 100:.2f}] | "
        f"{signed_cell((accs.mean() - base.mean()) * 100)} "
        f"[{signed_cell(low * 100)}, {signed_cell(high * 100)}] | Welch t | "
        f"{pairs.pvalue:.3g} | {holm:.3g} | not significant |"
    )
    summary = (result.out_dir / "learning_rate" / "summary.md").read_text()
    assert row in summary
    assert "**highest mean (not significant)**: lr=0.0016, " in summary


def test_welch_when_the_seeds_differ(tmp_path):
    exp_dir = tmp_path / "optimizer"
    write_experiment_file(exp_dir, "[base]\nepochs = 3\n[grid]\noptimizer = ['adam', 'sgd']\n")
    a1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
    a2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]
    for seed, (x1, x2) in enumerate(zip(a1, a2, strict=True)):
        add_run(exp_dir, RunConfig(epochs=EPOCHS, seed=seed), x1 / 100)
        add_run(exp_dir, RunConfig(epochs=EPOCHS, optimizer="sgd", seed=100 + seed), x2 / 100)
    (report,) = load_reports([exp_dir])
    sgd = arm(report, "optimizer=sgd")
    assert arm(report, "optimizer=adam") is report.base
    assert sgd.comparison.test == "Welch t" and sgd.headline.n == 15
    assert sgd.comparison.p_value == pytest.approx(0.021, abs=5e-4)  # Wikipedia's Example 1
    assert sgd.comparison.p_adjusted == sgd.comparison.p_value  # one arm: Holm changes nothing


# ---------------------------------------------------------------------------- verdicts


def test_no_significant_arm_names_no_best_and_no_better(tmp_path):
    exp_dir = build_optimizer(tmp_path / "results" / "optimizer", LEVEL)
    result = make_report([exp_dir])
    report = result.experiments["optimizer"]
    assert report.winner is None and not report.better and not report.worse
    assert all(a.verdict == NOT_SIGNIFICANT for a in report.arms if not a.is_base)
    pages = [result.index_md, result.index_path, *result.summaries["optimizer"]]
    texts = [page.read_text().lower() for page in pages]
    texts += [figure_texts(fig).lower() for fig in build_figures(report).values()]
    texts.append(figure_texts(overview_figure([report])).lower())
    for text in texts:
        assert "best" not in text and "better" not in text
    summary = texts[2]
    assert "no arm differs significantly from the base case at 95%" in summary
    assert "**highest mean (not significant)**: optimizer=rmsprop" in summary


def test_a_clearly_better_arm_is_named(clear):
    report = clear.experiments["optimizer"]
    rmsprop, sgd = arm(report, "optimizer=rmsprop"), arm(report, "optimizer=sgd")
    assert rmsprop.verdict == BETTER and sgd.verdict == WORSE and report.winner is rmsprop
    assert rmsprop.comparison.test == "Welch t" and rmsprop.comparison.p_adjusted < 0.05
    summary = clear.summaries["optimizer"][0].read_text()
    assert "- **better than the base case**: optimizer=rmsprop, 90.43% (+2.00 pp [" in summary
    assert "- **significantly lower**: optimizer=sgd" in summary
    assert "| optimizer=rmsprop ★ best | 3 |" in summary
    assert "| optimizer=adam (base case) | 3 |" in summary
    page = clear.summaries["optimizer"][1].read_text()
    assert "<tr class='winner'><td class='text'>optimizer=rmsprop ★ best</td>" in page
    assert "<tr class='base'><td class='text'>optimizer=adam (base case)</td>" in page
    labels = final_figure(report).axes[0].get_legend_handles_labels()[1]
    assert any(label.startswith("best: optimizer=rmsprop (Holm p = ") for label in labels)
    assert "better than base: optimizer=rmsprop; lower: optimizer=sgd" in clear.index_md.read_text()


def test_incomplete_arms_never_win(tmp_path):
    exp_dir = tmp_path / "activation"
    write_experiment_file(
        exp_dir, "seeds = [0, 1, 2]\n[base]\nepochs = 3\n[grid]\nactivation = ['tanh', 'relu']\n"
    )
    for seed, acc in enumerate(BASE_ACC):
        add_run(exp_dir, RunConfig(epochs=EPOCHS, seed=seed), acc)
    relu = [RunConfig(epochs=EPOCHS, activation="relu", seed=seed) for seed in range(3)]
    add_run(exp_dir, relu[0], 0.950)  # two lucky survivors, far above the base case
    add_run(exp_dir, relu[1], 0.952)
    add_run(exp_dir, relu[2], 0.5, diverge=True)
    result = make_report([exp_dir])
    report = result.experiments["activation"]
    lucky = arm(report, "activation=relu")
    assert lucky.incomplete and lucky.verdict == INCOMPLETE
    assert lucky.comparison.test == "Welch t"  # seeds 0, 1 against 0, 1, 2
    assert lucky.comparison.p_adjusted < 0.05  # significant, and still not singled out
    assert report.winner is None and report.highest is report.base
    summary = result.summaries["activation"][0].read_text()
    assert "| activation=relu | 2 of 3 |" in summary and "| incomplete (2 of 3 seeds) |" in summary
    assert "**highest mean**: the base case itself" in summary
    assert (
        "activation: incomplete arms (fewer ok seeds than planned): activation=relu" in result.notes
    )
    assert "best" not in figure_texts(final_figure(report))


# ---------------------------------------------------------------------------- base, partial, failures


def test_base_case_found_in_another_experiment(study):
    _, result = study
    report = result.experiments["learning_rate"]
    assert report.base_borrowed and report.base_source == "lenet_baseline"
    assert report.base.headline.n == 3
    assert report.base.headline.mean == pytest.approx(np.mean(BASE_ACC))
    assert "learning_rate: base case taken from experiment lenet_baseline" in result.notes
    summary = (result.out_dir / "learning_rate" / "summary.md").read_text()
    assert "| base case (from lenet_baseline) | 3 |" in summary
    # [base] of the scheduler grid is not a run by itself: it falls back to no scheduler.
    scheduler = result.experiments["scheduler"]
    assert scheduler.base_source == "lenet_baseline"
    assert any("scheduler: [base] is not a complete run" in note for note in result.notes)
    baseline = result.experiments["lenet_baseline"]
    assert baseline.base is baseline.arms[0] and not baseline.base_borrowed


def test_a_run_shared_by_several_experiment_folders_counts_once(study, tmp_path):
    # The runner places a run shared by experiments in each of their folders, its experiment
    # column set to that folder: the optimizer grid holds its own copy of the base case.
    root, _ = study
    exp_dir = build_optimizer(tmp_path / "optimizer", {"adam": BASE_ACC, "sgd": [0.76, 0.77, 0.75]})
    reports = {r.name: r for r in load_reports([root, exp_dir])}
    optimizer, lr = reports["optimizer"], reports["learning_rate"]
    assert not optimizer.base_borrowed and optimizer.base.label == "optimizer=adam"
    assert lr.base_source == "lenet_baseline"  # the dedicated baseline, not the optimizer grid
    assert lr.base.headline.n == 3  # the same three runs, not six


def test_local_base_without_finished_runs_is_not_the_base(study, tmp_path):
    root, _ = study
    exp_dir = tmp_path / "optimizer"
    write_experiment_file(
        exp_dir, "seeds = [0]\n[base]\nepochs = 3\n[grid]\noptimizer = ['adam', 'sgd']\n"
    )
    add_run(exp_dir, RunConfig(epochs=EPOCHS, seed=0), 0.5, diverge=True)
    add_run(exp_dir, RunConfig(epochs=EPOCHS, optimizer="sgd", seed=0), 0.76)
    report = next(r for r in load_reports([root, exp_dir]) if r.name == "optimizer")
    adam = arm(report, "optimizer=adam")
    assert report.base_borrowed and report.base_source == "lenet_baseline"
    assert not adam.is_base and [a for a in report.shown_arms if a.is_base] == [report.base]
    assert any("its base arm optimizer=adam has no finished runs" in n for n in report.notes)


def test_unrun_base_falls_back_to_the_study_base_case(study, tmp_path):
    root, _ = study
    combined = tmp_path / "combined"  # [base] is wide/max/bn/tanh, but only relu variants run
    write_experiment_file(
        combined,
        "seeds = [0]\n[base]\nepochs = 3\nchannels = [32, 64, 256]\npooling = 'max'\n"
        "batchnorm = true\n[grid]\nactivation = ['relu', 'leaky_relu']\n",
    )
    for activation in ("relu", "leaky_relu"):
        cfg = RunConfig(
            epochs=EPOCHS, channels=(32, 64, 256), pooling="max", batchnorm=True,
            activation=activation, seed=0,
        )  # fmt: skip
        add_run(combined, cfg, 0.92)
    report = next(r for r in load_reports([root, combined]) if r.name == "combined")
    assert report.base_source == "lenet_baseline"
    assert any("compared with the study's base case instead" in note for note in report.notes)
    relu = arm(report, "activation=relu")
    assert relu.comparison.diff == pytest.approx(0.92 - np.mean(BASE_ACC))


def test_no_base_case_anywhere_leaves_differences_blank(study):
    root, _ = study
    (report,) = load_reports([root / "learning_rate"])
    assert report.base is None
    assert all(a.comparison is None for a in report.arms)
    assert any("no base case" in note for note in report.notes)


def test_train_folder_is_skipped_and_never_lends_its_base(study, tmp_path):
    root = tmp_path / "results"
    for name in ("learning_rate", "scheduler"):  # neither holds the base case
        build = study[0] / name
        for file in (build / "runs").glob("*.parquet"):
            (root / name / "runs").mkdir(parents=True, exist_ok=True)
            (root / name / "runs" / file.name).write_bytes(file.read_bytes())
    for seed, acc in enumerate(BASE_ACC):  # ad-hoc `fmnist-ray train` runs of the base case
        add_run(root / "train", RunConfig(epochs=EPOCHS, seed=seed), acc)
    result = make_report([root])
    assert set(result.experiments) == {"learning_rate", "scheduler"}
    assert result.experiments["learning_rate"].base is None
    assert any(note.startswith(f"skipped {root / 'train'}") for note in result.notes)
    named = load_reports([root / "train", root / "learning_rate"])
    assert [r.name for r in named] == ["learning_rate", "train"]
    assert named[0].base is None  # named, reported, and still not a source of base cases


def test_diverged_and_failed_runs_are_listed_and_excluded(study):
    _, result = study
    report = result.experiments["learning_rate"]
    risky = arm(report, "lr=0.0064")
    assert risky.headline.n == 1 and risky.headline.mean == pytest.approx(0.860)
    assert len(risky.diverged) == 1 and len(risky.failed) == 1 and risky.incomplete
    diverged_id = RunConfig(epochs=EPOCHS, lr=DIVERGING_LR, seed=1).run_id
    failed_id = RunConfig(epochs=EPOCHS, lr=DIVERGING_LR, seed=2).run_id
    summary = (result.out_dir / "learning_rate" / "summary.md").read_text()
    assert f"`{diverged_id}` lr=0.0064, seed 1: loss not finite at epoch 2" in summary
    assert f"`{failed_id}` lr=0.0064, seed 2: RuntimeError: CUDA out of memory" in summary
    assert "| lr=0.0064 | 1 of 3 | 0.5000 | 86.00 | n=1: no interval |" in summary
    assert "| none (n=1) | – | – | incomplete (1 of 3 seeds) |" in summary
    assert "learning_rate: 1 diverged run, excluded from statistics" in result.notes
    assert "learning_rate: 1 failed run, excluded from statistics" in result.notes
    # 9 expected: 8 have a result file (one of them diverged), 1 failed.
    assert report.completeness.describe() == "partial: 8 of 9 runs (1 failed, 0 not run)"


def test_a_corrupt_failure_record_is_a_note_and_the_report_goes_on(tmp_path):
    exp_dir = build_optimizer(tmp_path / "optimizer", LEVEL)
    failed = RunConfig(epochs=EPOCHS, optimizer="sgd", seed=3)
    write_failure(exp_dir, failed, "RuntimeError: CUDA out of memory")
    (exp_dir / "failures" / "torn.json").write_text('{"run_id": "abc", "err')
    (exp_dir / "failures" / "list.json").write_text("[1, 2]")
    result = make_report([exp_dir], out_dir=tmp_path / "out")
    notes = [n for n in result.notes if "not a failure record" in n]
    assert len(notes) == 2, result.notes
    assert any(f"{exp_dir / 'failures' / 'torn.json'}: not JSON" in n for n in notes)
    assert any(f"{exp_dir / 'failures' / 'list.json'}: not a JSON object" in n for n in notes)
    summary = result.summaries["optimizer"][0].read_text()
    assert f"`{failed.run_id}` optimizer=sgd, seed 3: RuntimeError: CUDA out of memory" in summary
    assert "torn.json" in summary  # the page says what was left out, as the CLI does


def test_partial_grid_is_reported(tmp_path):
    exp_dir = tmp_path / "quickstart"
    write_experiment_file(
        exp_dir, "seeds = [0, 1]\n[base]\nepochs = 3\n[grid]\nlr = [0.001, 0.002]"
    )
    for lr, seed in [(0.001, 0), (0.001, 1), (0.002, 0)]:
        add_run(exp_dir, RunConfig(epochs=EPOCHS, lr=lr, seed=seed), 0.88)
    (report,) = load_reports([tmp_path])
    assert report.completeness.partial
    assert "quickstart: partial: 3 of 4 runs (0 failed, 1 not run)" in report.notes


def test_single_seed_shows_no_interval_and_infers_axes(tmp_path):
    exp_dir = tmp_path / "results" / "optimizer"
    for optimizer, acc in [("adam", 0.89), ("sgd", 0.76)]:
        add_run(exp_dir, RunConfig(optimizer=optimizer, seed=0), acc)  # the study's 20 epochs
    result = make_report([exp_dir])
    assert result.out_dir == exp_dir / "report"
    report = result.experiments["optimizer"]
    assert report.axes == ["optimizer"]
    assert report.base is arm(report, "optimizer=adam")  # RunConfig() defaults: the base case
    sgd = arm(report, "optimizer=sgd")
    assert sgd.comparison.diff == pytest.approx(-0.13) and math.isnan(sgd.headline.ci_low)
    summary = result.summaries["optimizer"][0].read_text()
    assert (
        f"| optimizer=sgd | 1 | 0.3000 | 76.00 | n=1: no interval | {MINUS}13.00 | none (n=1) | – | – |"
        in summary
    )
    assert any(
        "no experiment.toml; axes inferred from the runs: optimizer" in n for n in result.notes
    )
    title = final_figure(report).axes[0].get_title(loc="left")
    assert "hollow marker: n=1, no interval" in title


def test_missing_or_empty_results_raise_report_error(tmp_path):
    empty = tmp_path / "results"
    empty.mkdir()
    with pytest.raises(ReportError, match=r"no results under .*results: found no runs/\*\.parquet"):
        make_report([empty])
    with pytest.raises(ReportError, match="nowhere: no such file or folder"):
        make_report([tmp_path / "nowhere"])
    assert issubclass(ReportError, ValueError)


def test_default_out_dir_rule(tmp_path):
    assert default_out_dir([tmp_path / "results" / "lr"]) == tmp_path / "results" / "lr" / "report"
    assert default_out_dir([tmp_path / "results"]) == tmp_path / "results" / "report"
    two = [tmp_path / "results" / "a", tmp_path / "results" / "b"]
    assert default_out_dir(two) == tmp_path / "results" / "report"


def test_importing_the_error_loads_no_plotting_and_no_scipy():
    code = (
        "import sys; from fmnist_ray.reporting import ReportError; import fmnist_ray.cli.commands; "
        "print(sorted(m for m in ('matplotlib', 'scipy') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# ---------------------------------------------------------------------------- references


def test_reference_inside_and_outside_the_prediction_interval(clear):
    report = clear.experiments["optimizer"]
    checks = {(c.arm.label, c.reference.metric): c for c in report.references}
    adam, sgd = checks[("optimizer=adam", "test_acc")], checks[("optimizer=sgd", "test_acc")]
    accs = np.array(CLEAR["adam"])
    half = stats.t.ppf(0.975, 2) * accs.std(ddof=1) * math.sqrt(1 + 1 / 3)
    assert (adam.ours.pi_low, adam.ours.pi_high) == pytest.approx(
        (accs.mean() - half, accs.mean() + half)
    )
    assert adam.reference.value == 0.8967 and adam.inside is True
    assert sgd.reference.value == 0.7593 and sgd.inside is False
    assert sgd.ours.ci_low > sgd.reference.value  # (and outside the narrower CI of the mean)
    summary = clear.summaries["optimizer"][0].read_text()
    assert "| reference (%) | in 95% PI |" in summary
    assert "| optimizer=sgd | 3 |" in summary and "| 75.93 | outside |" in summary
    assert "## Published reference values" in summary
    assert "| optimizer=adam | test_acc | 89.67 | 88.43 | 3 | [87.31, 89.55] |" in summary
    index = clear.index_md.read_text()
    assert "- optimizer, optimizer=sgd, test_acc: reference 75.93 outside our 95% PI [" in index
    assert "- optimizer, optimizer=adam" not in index  # inside: not listed
    labels = final_figure(report).axes[0].get_legend_handles_labels()[1]
    assert labels.count(REFERENCE_LABEL) == 1
    curve = curve_figure(report, "train_loss").axes[0].get_legend_handles_labels()[1]
    assert curve.count(REFERENCE_LABEL) == 1


def test_reference_file_problems_and_no_match(tmp_path):
    exp_dir = build_optimizer(tmp_path / "results" / "quickstart", LEVEL)
    result = make_report([exp_dir], reference=STUDY_REFERENCE)
    assert not result.experiments["quickstart"].references
    assert "No reference value matches an arm reported here" in result.index_md.read_text()
    assert any("no value matches an arm reported here" in note for note in result.notes)
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "experiment,arm,metric,value,note\noptimizer,optimizer=adam,test_accuracy,0.9,\n"
    )
    with pytest.raises(ReportError, match=r"bad.csv, line 2: metric 'test_accuracy' is not one of"):
        make_report([exp_dir], reference=bad)
    bad.write_text("experiment,arm,value\n")
    with pytest.raises(ReportError, match="missing column"):
        make_report([exp_dir], reference=bad)


def test_cli_report_with_reference(tmp_path):
    exp_dir = build_optimizer(tmp_path / "optimizer", CLEAR, CLEAR_LOSS)
    cli = [sys.executable, "-m", "fmnist_ray", "report", exp_dir, "--out", tmp_path / "out"]
    done = subprocess.run([*map(str, cli), "--reference", str(STUDY_REFERENCE)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "6 of 85 values checked, 1 outside our 95% prediction interval" in done.stdout
    missing = subprocess.run([*map(str, cli), "--reference", str(tmp_path / "none.csv")],
                             capture_output=True, text=True)  # fmt: skip
    assert missing.returncode == 2 and missing.stderr.startswith("error: ")
    assert "no such reference file" in missing.stderr and "Traceback" not in missing.stderr


# ---------------------------------------------------------------------------- files and figures


class Links(HTMLParser):
    """Every href and src of a page, and whether it has a viewport and scrolling tables."""

    def __init__(self):
        super().__init__()
        self.targets, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        self.targets += [attrs[key] for key in ("href", "src") if key in attrs]


def test_every_link_and_image_of_every_page_resolves(study):
    root, result = study
    pages = sorted(result.out_dir.rglob("*.html"))
    assert len(pages) == 1 + len(result.experiments)
    for page in pages:
        parser = Links()
        parser.feed(page.read_text())
        assert parser.targets, page
        for target in parser.targets:
            assert (page.parent / target).is_file(), f"{page}: {target} does not resolve"
        tags = [tag for tag, _ in parser.tags]
        assert (
            "meta",
            {"name": "viewport", "content": "width=device-width, initial-scale=1"},
        ) in parser.tags
        assert tags.count("table") == sum(
            1 for t, a in parser.tags if t == "div" and a.get("class") == "scroll"
        )
    for page in sorted(result.out_dir.rglob("*.md")):
        for target in re.findall(r"\]\(([^)]+)\)", page.read_text()):
            assert (page.parent / target).is_file(), f"{page}: {target} does not resolve"


def test_files_written_and_linked(study):
    root, result = study
    assert result.out_dir == root / "report"
    assert set(result.experiments) == {"learning_rate", "lenet_baseline", "scheduler"}
    for name, paths in result.figures.items():
        names = sorted(p.name for p in paths)
        expected = sorted(
            f"{f}.{ext}"
            for f in ("train_loss", "test_acc", "final_test_acc")
            for ext in ("png", "svg")
        )
        assert names == expected and all(p.stat().st_size > 1000 for p in paths), name
        assert all(p.exists() for p in result.summaries[name])
    assert [p.name for p in result.overview] == ["overview.png", "overview.svg"]
    summary = (root / "report" / "learning_rate" / "summary.md").read_text()
    # Figures are paragraphs of their own, not one run-on line.
    assert "\n\n![train_loss](train_loss.png) ([SVG](train_loss.svg))\n\n![test_acc]" in summary
    assert "partial: 8 of 9 runs" in summary and "[← all experiments](../index.md)" in summary
    table = [line for line in summary.splitlines() if line.startswith("|")]
    assert not any(re.search(r"(?<![\w.])-\d", line) for line in table)  # one minus
    page = (root / "report" / "learning_rate" / "summary.html").read_text()
    assert "lr sweep &lt;fast&gt;" in page and "<img src='train_loss.png'" in page
    assert "<a href='../index.html'>" in page
    index = result.index_md.read_text()
    assert (
        "| [learning_rate](learning_rate/summary.md) | partial: 8 of 9 runs (1 failed, 0 not run) |"
        in index
    )
    assert "![final test accuracy of every experiment](overview.png)" in index
    assert "href='scheduler/summary.html'" in result.index_path.read_text()


def test_overview_has_one_panel_per_experiment(study):
    _, result = study
    reports = list(result.experiments.values())
    fig = overview_figure(reports)
    assert [ax.get_title() for ax in fig.axes] == [r.name for r in reports]
    baseline = fig.axes[[r.name for r in reports].index("lenet_baseline")]
    assert len(baseline.containers) == 1  # one arm, one error bar
    assert any(line.get_marker() == "D" for line in baseline.get_lines())  # its reference value
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert REFERENCE_LABEL in labels and "base case mean (band: 95% CI)" in labels


def test_curve_figures_have_one_line_per_arm_and_the_base(study):
    _, result = study
    report = result.experiments["learning_rate"]
    ax = curve_figure(report, "train_loss").axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels[:4] == [
        "lr=0.0004 (n=3)",
        "lr=0.0016 (n=3)",
        "lr=0.0064 (n=1, 1 diverged, 1 failed)",
        "base case (from lenet_baseline, n=3)",
    ]
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel().startswith("training loss")
    assert "band = min..max across seeds" in ax.get_title(loc="left")
    ax = curve_figure(report, "test_acc").axes[0]
    assert ax.get_ylabel() == "test accuracy (%)"
    best_line = ax.get_lines()[1]
    assert best_line.get_ydata()[-1] == pytest.approx(np.mean(LR_ACC[0.0016]) * 100)
    assert list(best_line.get_xdata()) == [1, 2, 3]


def test_final_figure_marks_base_and_highest(study):
    _, result = study
    report = result.experiments["learning_rate"]
    fig = final_figure(report)
    ax = fig.axes[0]
    assert len(ax.containers) == 3  # one error bar per arm with finished runs
    assert ax.get_xscale() == "log"  # 0.0004..0.0064 spans 16x
    assert ax.get_xlabel() == "learning rate lr (log scale)"
    labels = ax.get_legend_handles_labels()[1]
    assert f"base case: {np.mean(BASE_ACC) * 100:.2f}% (n=3, from lenet_baseline)" in labels
    assert "highest mean (not significant): lr=0.0016" in labels
    assert "highest mean (not significant): lr=0.0016, " in ax.get_title(loc="left")
    assert "final test accuracy" in fig.get_suptitle()


def test_two_axis_figure_draws_one_line_per_second_axis_value(study):
    _, result = study
    report = result.experiments["scheduler"]
    assert report.axes == ["lr", "step_size"]
    assert grid_roles(report) == ("step_size", "lr")  # more values on x, lines per lr
    ax = final_figure(report).axes[0]
    lines = [label for label in ax.get_legend_handles_labels()[1] if label.startswith("lr=")]
    assert lines == ["lr=0.001", "lr=0.01"]
    assert len(ax.containers) == 6 and ax.get_xscale() == "log"
    assert ax.get_xlabel().startswith("StepLR step_size")
    assert all(a.comparison.test == "Welch t" for a in report.arms)  # seeds 0, 1 vs base 0, 1, 2


def test_same_arm_same_colour_across_figures(study):
    _, result = study
    report = result.experiments["scheduler"]
    colors = arm_colors(report)
    assert len({tuple(c) for c in colors.values()}) == len(report.arms)
    curves = curve_figure(report, "test_acc").axes[0].get_lines()
    in_curves = {line.get_gid(): to_rgba(line.get_color()) for line in curves if line.get_gid()}
    assert in_curves.pop("base") == to_rgba("0.2")  # the borrowed base case: dark grey, dashed
    final = final_figure(report).axes[0].containers
    in_final = {bars.lines[0].get_gid(): to_rgba(bars.lines[0].get_color()) for bars in final}
    expected = {f"arm:{label}": to_rgba(color) for label, color in colors.items()}
    assert in_curves == in_final == expected


def test_an_incomplete_base_drops_only_what_makes_it_incomplete():
    from fmnist_ray.reporting.base import nearest_run

    # steplr without step_size: the schedule goes, with everything that depends on it.
    steplr = nearest_run({"epochs": 20, "scheduler": "steplr", "gamma": 0.9})
    assert steplr[1] == ["scheduler", "gamma"] and steplr[0].epochs == 20
    momentum = nearest_run({"momentum": 0.9, "lr": 0.01})  # adam has no momentum
    assert momentum[1] == ["momentum"] and momentum[0].lr == 0.01
