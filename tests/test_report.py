"""Tests of the report: statistics against hand computation (and textbook values), figures,
summary tables and edge cases, on hand-made Parquet results (no torch, no ray)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from scipy import stats

from fmnist_ray.config import RunConfig
from fmnist_ray.report import (
    ReportError,
    arm_colors,
    curve_figure,
    default_out_dir,
    final_figure,
    grid_roles,
    load_reports,
    make_report,
    seed_stats,
)
from fmnist_ray.results import history_table, write_failure, write_run

EPOCHS = 3
BASE_ACC = [0.880, 0.884, 0.889]  # lenet_baseline, seeds 0..2
LR_ACC = {0.0004: [0.870, 0.874, 0.871], 0.0016: [0.892, 0.897, 0.893]}
LR_LOSS = {0.0004: [0.40, 0.42, 0.41], 0.0016: [0.30, 0.31, 0.29]}
DIVERGING_LR = 0.0064  # seed 0 ok at 0.860, seed 1 diverges, seed 2 fails
# Welch's t-test, Example 1 of https://en.wikipedia.org/wiki/Welch%27s_t-test:
# t = -2.46, df = 25.0, p = 0.021.
WELCH_A1 = [
    27.5,
    21.0,
    19.0,
    23.6,
    17.0,
    17.9,
    16.9,
    20.1,
    21.9,
    22.6,
    23.1,
    19.6,
    19.0,
    21.7,
    21.4,
]
WELCH_A2 = [
    27.1,
    22.0,
    20.8,
    23.4,
    23.4,
    23.5,
    25.8,
    22.0,
    24.8,
    20.2,
    21.9,
    22.1,
    22.9,
    20.5,
    24.4,
]


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
                    epochs=EPOCHS,
                    lr=lr,
                    scheduler="steplr",
                    step_size=step_size,
                    gamma=0.9,
                    seed=seed,
                )
                acc = 0.88 + (0.01 if lr == 0.001 else 0) + step_size / 1e6 + seed / 1000
                add_run(scheduler_dir, cfg, acc)
    return root


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The study's results tree and one full report over it (rendering is the slow part)."""
    root = build_study(tmp_path_factory.mktemp("study") / "results")
    return root, make_report([root])


def arm(report, label):
    return next(a for a in report.arms if a.label == label)


# ---------------------------------------------------------------------------- statistics


def test_seed_stats_textbook_values():
    values = [0.80, 0.82, 0.84]  # mean 0.82, s = 0.02; t(0.975, df=2) = 4.303 from t tables
    result = seed_stats(values)
    assert result.mean == pytest.approx(0.82)
    assert result.std == pytest.approx(0.02)
    assert result.ci_high - result.mean == pytest.approx(4.303 * 0.02 / math.sqrt(3), rel=1e-3)
    welch = seed_stats(WELCH_A2, WELCH_A1)
    assert welch.p_value == pytest.approx(0.021, abs=5e-4)
    assert welch.diff == pytest.approx(np.mean(WELCH_A2) - np.mean(WELCH_A1))


def test_seed_stats_edges_are_honest():
    single = seed_stats([0.9], base=[0.8, 0.81])
    assert single.n == 1 and math.isnan(single.std) and math.isnan(single.ci_low)
    assert single.diff == pytest.approx(0.095) and math.isnan(single.p_value)
    assert math.isnan(seed_stats([0.9, 0.91], base=[0.8]).p_value)
    assert math.isnan(seed_stats([0.9, 0.91]).diff)


def test_arm_statistics_match_hand_computation(study):
    root, result = study
    report = result.experiments["learning_rate"]
    best = arm(report, "lr=0.0016")
    accs = np.array(LR_ACC[0.0016])
    half = stats.t.ppf(0.975, 2) * accs.std(ddof=1) / math.sqrt(3)
    welch = stats.ttest_ind(accs, BASE_ACC, equal_var=False)
    assert best.test_acc.n == 3
    assert best.test_acc.mean == pytest.approx(accs.mean())
    assert best.test_acc.std == pytest.approx(accs.std(ddof=1))
    assert (best.test_acc.ci_low, best.test_acc.ci_high) == pytest.approx(
        (accs.mean() - half, accs.mean() + half)
    )
    assert best.test_acc.diff == pytest.approx(accs.mean() - np.mean(BASE_ACC))
    assert best.test_acc.p_value == pytest.approx(welch.pvalue)
    assert best.train_loss.mean == pytest.approx(np.mean(LR_LOSS[0.0016]))
    assert report.best is best

    row = (
        f"| lr=0.0016 ★ best | 3 | {np.mean(LR_LOSS[0.0016]):.4f} | {accs.mean() * 100:.2f} | "
        f"[{(accs.mean() - half) * 100:.2f}, {(accs.mean() + half) * 100:.2f}] | "
        f"{(accs.mean() - np.mean(BASE_ACC)) * 100:+.2f} | {welch.pvalue:.3g} | 0 | 0 |"
    )
    summary = (result.out_dir / "learning_rate" / "summary.md").read_text()
    assert row in summary
    assert "best configuration**: lr=0.0016" in summary


def test_welch_textbook_example_through_the_report(tmp_path):
    exp_dir = tmp_path / "optimizer"
    for seed, (a1, a2) in enumerate(zip(WELCH_A1, WELCH_A2, strict=True)):
        add_run(exp_dir, RunConfig(epochs=EPOCHS, seed=seed), a1 / 100)
        add_run(exp_dir, RunConfig(epochs=EPOCHS, optimizer="sgd", seed=seed), a2 / 100)
    # Without experiment.toml the base case is the study's (20 epochs): give it an explicit one.
    write_experiment_file(exp_dir, "[base]\nepochs = 3\n[grid]\noptimizer = ['adam', 'sgd']\n")
    (report,) = load_reports([exp_dir])
    sgd = arm(report, "optimizer=sgd")
    assert arm(report, "optimizer=adam") is report.base
    assert sgd.test_acc.n == 15
    assert sgd.test_acc.p_value == pytest.approx(0.021, abs=5e-4)


# ---------------------------------------------------------------------------- base, partial, failures


def test_base_case_found_in_another_experiment(study):
    _, result = study
    report = result.experiments["learning_rate"]
    assert report.base_borrowed and report.base_source == "lenet_baseline"
    assert report.base.test_acc.n == 3
    assert report.base.test_acc.mean == pytest.approx(np.mean(BASE_ACC))
    assert "learning_rate: base case taken from experiment lenet_baseline" in result.notes
    summary = (result.out_dir / "learning_rate" / "summary.md").read_text()
    assert "| base case (from lenet_baseline) | 3 |" in summary
    # [base] of the scheduler grid is not a run by itself: it falls back to no scheduler.
    scheduler = result.experiments["scheduler"]
    assert scheduler.base_source == "lenet_baseline"
    assert any("scheduler: [base] is not a complete run" in note for note in result.notes)
    baseline = result.experiments["lenet_baseline"]
    assert baseline.base is baseline.arms[0] and not baseline.base_borrowed


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
            epochs=EPOCHS,
            channels=(32, 64, 256),
            pooling="max",
            batchnorm=True,
            activation=activation,
            seed=0,
        )
        add_run(combined, cfg, 0.92)
    report = next(r for r in load_reports([root, combined]) if r.name == "combined")
    assert report.base_source == "lenet_baseline"
    assert any("compared with the study's base case instead" in note for note in report.notes)
    assert arm(report, "activation=relu").test_acc.diff == pytest.approx(0.92 - np.mean(BASE_ACC))


def test_no_base_case_anywhere_leaves_differences_blank(study):
    root, _ = study
    (report,) = load_reports([root / "learning_rate"])
    assert report.base is None
    assert all(math.isnan(a.test_acc.diff) for a in report.arms)
    assert any("no base case" in note for note in report.notes)


def test_diverged_and_failed_runs_are_listed_and_excluded(study):
    _, result = study
    report = result.experiments["learning_rate"]
    risky = arm(report, "lr=0.0064")
    assert risky.test_acc.n == 1 and risky.test_acc.mean == pytest.approx(0.860)
    assert len(risky.diverged) == 1 and len(risky.failed) == 1
    diverged_id = RunConfig(epochs=EPOCHS, lr=DIVERGING_LR, seed=1).run_id
    failed_id = RunConfig(epochs=EPOCHS, lr=DIVERGING_LR, seed=2).run_id
    summary = (result.out_dir / "learning_rate" / "summary.md").read_text()
    assert f"`{diverged_id}` lr=0.0064, seed 1: loss not finite at epoch 2" in summary
    assert f"`{failed_id}` lr=0.0064, seed 2: RuntimeError: CUDA out of memory" in summary
    assert "| lr=0.0064 | 1 | 0.5000 | 86.00 | n=1: no interval |" in summary
    assert "| n=1: no test | 1 | 1 |" in summary
    assert "learning_rate: 1 diverged run, excluded from statistics" in result.notes
    assert "learning_rate: 1 failed run, excluded from statistics" in result.notes
    # 9 expected: 8 have a result file (one of them diverged), 1 failed.
    assert report.completeness.describe() == "partial: 8 of 9 runs (1 failed, 0 not run)"


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
    assert sgd.test_acc.diff == pytest.approx(-0.13) and math.isnan(sgd.test_acc.ci_low)
    summary = result.summaries["optimizer"][0].read_text()
    assert "| optimizer=sgd | 1 | 0.3000 | 76.00 | n=1: no interval | -13.00 | n=1: no test |" in (
        summary
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


# ---------------------------------------------------------------------------- files and figures


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
    summary = (root / "report" / "learning_rate" / "summary.md").read_text()
    assert "![final_test_acc](final_test_acc.png)" in summary
    assert "partial: 8 of 9 runs" in summary
    page = (root / "report" / "learning_rate" / "summary.html").read_text()
    assert "lr sweep &lt;fast&gt;" in page and "<img src='train_loss.png'" in page
    index = result.index_md.read_text()
    assert "| learning_rate | partial: 8 of 9 runs (1 failed, 0 not run) | lr=0.0016 |" in index
    assert "[md](learning_rate/summary.md)" in index
    assert "href='scheduler/summary.html'" in result.index_path.read_text()


def test_curve_figures_have_one_line_per_arm_and_the_base(study):
    _, result = study
    report = result.experiments["learning_rate"]
    ax = curve_figure(report, "train_loss").axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == [
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


def test_final_figure_marks_base_and_best(study):
    _, result = study
    report = result.experiments["learning_rate"]
    fig = final_figure(report)
    ax = fig.axes[0]
    assert len(ax.containers) == 3  # one error bar per arm with finished runs
    assert ax.get_xscale() == "log"  # 0.0004..0.0064 spans 16x
    assert ax.get_xlabel() == "learning rate lr (log scale)"
    labels = ax.get_legend_handles_labels()[1]
    assert f"base case: {np.mean(BASE_ACC) * 100:.2f}% (n=3, from lenet_baseline)" in labels
    assert "best: lr=0.0016" in labels
    gain = (np.mean(LR_ACC[0.0016]) - np.mean(BASE_ACC)) * 100
    assert f"best: lr=0.0016, {np.mean(LR_ACC[0.0016]) * 100:.2f}% ({gain:+.2f} pp" in (
        ax.get_title(loc="left")
    )
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
    assert report.best.label == "lr=0.001, step_size=1600"


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
