"""The prose of the README's "The study, reproduced", written from the committed runs: every number
is computed here (through fmnist_ray's plan, report and results readers), and every judgement
follows a stated rule on a named test: `readme_study.py --check` fails when text and data part."""

from __future__ import annotations

import importlib.util
import json
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

from scipy import stats as scipy_stats

from fmnist_ray.planning.plan import Plan, make_plan
from fmnist_ray.reporting.analysis import verdict_of
from fmnist_ray.reporting.build import analyze
from fmnist_ray.reporting.load import read_reference
from fmnist_ray.reporting.model import Arm, ExperimentReport, ReferenceCheck
from fmnist_ray.reporting.power import reference_offsets
from fmnist_ray.reporting.references import parse_references
from fmnist_ray.reporting.stats import ALPHA, CONFIDENCE, POWER, compare, sd_range, seeds_needed
from fmnist_ray.reporting.text import (
    format_p,
    interval,
    metric_interval,
    metric_text,
    signed,
)
from fmnist_ray.spec.grid import load_experiments
from fmnist_ray.spec.metrics import metric
from fmnist_ray.store.results import find_run_files, read_metadata

REPO = Path(__file__).resolve().parents[1]
GPU_RESULTS = "benchmarks/RESULTS.md#on-a-gpu-2026-11-30-nvidia-h200"
WIDTH = 99  # README lines


@dataclass
class Study:
    """The committed study as read back: its plan, its analysed experiments, its runs' metadata."""

    results: Path
    plan: Plan
    reports: dict[str, ExperimentReport]
    metadata: list[dict]  # one per unique run
    environment: dict  # results/<first experiment>/environment.json
    cost_module: object  # benchmarks/study_cost.py, for the cost figures

    def arm(self, experiment: str, label: str | None = None) -> Arm:
        """An arm by its label; None gives the experiment's base case."""
        report = self.reports[experiment]
        if label is None:
            return report.base
        return next(arm for arm in report.arms if arm.label == label)

    @property
    def checks(self) -> list[ReferenceCheck]:
        return [check for report in self.reports.values() for check in report.references]


def load_study(results: Path, experiments: Path, reference: Path) -> Study:
    files = sorted(experiments.glob("*.toml"))
    plan = make_plan(load_experiments(files), results)
    names = [exp.name for exp in plan.experiments]
    refs = parse_references(read_reference(reference), str(reference))
    reports, _ = analyze([results / name for name in names], refs)
    seen, metadata = set(), []
    for path in find_run_files([results / name for name in names]):
        if path.stem not in seen:
            seen.add(path.stem)
            metadata.append(read_metadata(path))
    environment = json.loads((results / names[0] / "environment.json").read_text())
    spec = importlib.util.spec_from_file_location("study_cost", REPO / "benchmarks/study_cost.py")
    cost = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cost)
    return Study(results, plan, {r.name: r for r in reports}, metadata, environment, cost)


# ------------------------------------------------------------------------- wording of numbers


def pct(value: float) -> str:
    return f"{value * 100:.2f}%"


def diff(arm: Arm) -> str:
    """'+0.89 pp [+0.14, +1.65], Holm p = 0.0364': an arm against the base case."""
    c = arm.comparison
    ci = interval(c.diff_low * 100, c.diff_high * 100, sign=True)
    return f"{signed(c.diff * 100)} pp {ci}, Holm p {_p(c.p_adjusted)}"


def _p(p: float) -> str:
    shown = format_p(p)
    return f"< {shown[1:]}" if shown.startswith("<") else f"= {shown}"


def verdict(arm: Arm, direction: int) -> str:
    """The rule every judgement follows: 'holds' only for Holm p < 0.05 in the claimed
    direction (+1 above the base case, -1 below)."""
    c = arm.comparison
    if c.p_adjusted < ALPHA:
        return "holds" if c.diff * direction > 0 else "is contradicted"
    return "is not established"


def unadjusted_note(arm: Arm) -> str:
    """When the unadjusted interval excludes 0 but Holm's adjustment leaves p >= 0.05."""
    c = arm.comparison
    if c.p_adjusted >= ALPHA and (c.diff_low > 0 or c.diff_high < 0):
        return f" (its 95% CI excludes 0 and p = {format_p(c.p_value)} unadjusted; not after Holm)"
    return ""


def bullet(text: str) -> str:
    return textwrap.fill(text, WIDTH, initial_indent="- ", subsequent_indent="  ")


def paragraph(text: str) -> str:
    return textwrap.fill(text, WIDTH)


def listing(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# ------------------------------------------------------------------------------- the sections


def intro(study: Study) -> str:
    plan, cluster = study.plan, study.environment["cluster_resources"]
    configs = [cfg for exp in plan.experiments for cfg in exp.runs]
    epochs = listing([str(e) for e in sorted({cfg.epochs for cfg in configs})])
    seeds = listing([str(s) for s in sorted({cfg.seed for cfg in configs})])
    gpus = f"{cluster['GPU']:g} GPUs" if cluster.get("GPU") else "no GPU"
    done = len(plan.runs) - len(plan.todo)
    head = paragraph(
        f"The study that [docs/study.md](docs/study.md) describes, run in full with this tool: its "
        f"{len(plan.experiments)} experiment files in `experiments/study/` ({plan.planned} "
        f"planned runs, {len(plan.runs)} unique configurations), {epochs} epochs each, seeds "
        f"{seeds}, on this project's development box ({cluster['CPU']:g} CPU cores, {gpus}), as "
        "one `run` of the whole study, resumed after each stop:"
    )
    commands = f"""```bash
nice -n 19 fmnist-ray run experiments/study/ --data-dir ../shared/data
# the committed report: the study's {len(plan.experiments)} experiment folders only, written over results/report/
fmnist-ray report $(basename -s .toml experiments/study/*.toml | sed 's|^|results/|') \\
    --reference study_reference.csv --out results/report
python docs/readme_study.py       # this section: tables from that report, numbers from the runs
```"""  # noqa: E501
    tail = paragraph(
        "Every run's history is committed in `results/NAME/runs/`, and the report in "
        "[results/report/index.md](results/report/index.md). On a fresh clone `fmnist-ray plan "
        f"experiments/study/` finds {done} of the {len(plan.runs)} study runs done, and the "
        "report regenerates unchanged from those folders, whatever else `results/` holds "
        "(`tests/test_study_results.py` checks both). This section, down to the next heading, is "
        "written by `docs/readme_study.py`: the tables are copied from the report's pages, every "
        "other number is computed from the committed runs, and `python docs/readme_study.py "
        "--check` (run by the same test) fails when the text and the data disagree."
    )
    return "\n\n".join([head, commands, tail])


def _minutes(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60}:{minutes % 60:02d}"


def cost(study: Study) -> str:
    c, env = study.cost_module, study.environment
    found = c.runs(study.results)
    took = sum(r["seconds"] for r in found.values())
    guess = sum(r["estimate"] for r in found.values())
    slots = round(env["cluster_resources"]["CPU"] / env["resources_per_run"]["cpus"])
    spans = sorted(
        (min(r["start"] for r in group), max(r["end"] for r in group))
        for group in c.grouped(found, "commit").values()
    )
    walls = [(last - first).total_seconds() for first, last in spans]
    ratios = {
        name: sum(r["seconds"] for r in group) / sum(r["estimate"] for r in group)
        for name, group in c.grouped(found, "experiment").items()
    }
    worst = sorted(ratios, key=ratios.get, reverse=True)[:2]
    wall_estimate = c.makespan([r["estimate"] for r in found.values()], slots)
    threads = listing(sorted({str(m["torch_threads"]) for m in study.metadata}))
    torch = listing(sorted({m["versions"]["torch"] for m in study.metadata}))
    devices = listing(sorted({m["device"] for m in study.metadata}))
    system, machine = env["platform"].split("-")[0], env["platform"].split("-")[-3]
    return paragraph(
        f"**What it cost** (read from the runs' metadata; `python benchmarks/study_cost.py` "
        f"prints the details): {len(found)} unique runs, **{took / 3600:.2f} run-hours** of "
        f"training (each run on {threads} CPU thread, {slots} at a time), "
        f"**{sum(walls) / 3600:.2f} hours of wall time** in {len(spans)} `run` processes "
        f"({listing([_minutes(w) for w in walls])}, grouped by the git commit their runs record; "
        "each resumed where the one before stopped). `plan` estimated "
        f"{guess / 3600:.2f} run-hours and {wall_estimate / 3600:.2f} h "
        f"wall on {slots} slots, longest first: the runs took {took / guess:.2f}x the estimate "
        f"({min(ratios.values()):.2f}x to {max(ratios.values()):.2f}x per experiment; the most "
        f"underestimated: {listing([f'{n} at {ratios[n]:.2f}x' for n in worst])}). The machine: "
        f"{env['cluster_resources']['CPU']:g} CPU cores ({system}, {machine}), device {devices}, "
        f"torch {torch}. [benchmarks/RESULTS.md]({GPU_RESULTS}) has some of the same "
        "experiments on a GPU."
    )


def tables_intro(study: Study) -> str:
    seeds = {arm.headline.n for r in study.reports.values() for arm in r.shown_arms}
    return paragraph(
        f"Per experiment, per arm: our mean final test accuracy and its 95% CI over the "
        f"{listing([str(s) for s in sorted(seeds)])} seeds; the study's published single-run value "
        "(`study_reference.csv`); whether that value lies inside our 95% prediction interval for "
        "one new run; and the verdict against the base case with its Holm-adjusted p (Welch's "
        "t-test over seeds). The tables are copied from the report's `summary.md` pages."
    )


# ------------------------------------------------------------------ the study's conclusions


def rule(study: Study) -> str:
    base = study.arm("lenet_baseline")
    width = base.headline.ci_high - base.headline.ci_low
    others = [a for r in study.reports.values() for a in r.arms if a.comparison is not None]
    near = sum(abs(a.comparison.diff) < width for a in others)
    counts = [len(a.seeds) for r in study.reports.values() for a in [r.base, *r.arms] if a]
    seeds = f"{min(counts)} seeds" + (
        "" if min(counts) == max(counts) else f", up to {max(counts)} where `settle` added some"
    )
    return paragraph(
        "**Which of the study's conclusions hold up.** Each arm is compared with the base case "
        f"as in the tables: Welch's t-test over every seed ({seeds}), Holm-adjusted "
        "over the arms of its experiment. A conclusion *holds* when the adjusted p is below "
        f"{ALPHA:.2f} in its direction, *is contradicted* when it is below {ALPHA:.2f} the other "
        "way, and *is not established* otherwise. Differences are in percentage points (pp) of "
        "final test accuracy, with their 95% CI. The base case's own 95% CI is "
        f"{metric_interval('test_acc', base.headline.ci_low, base.headline.ci_high)}, "
        f"{width * 100:.2f} pp wide; {near} of the other {len(others)} arms differ from it by "
        "less than that width."
    )


def _claim(quote: str, arms: list[tuple[str, Arm]], direction: int) -> str:
    """'*"X"* holds: a: +0.89 pp [...], Holm p = ...' for one or several arms."""
    verdicts = [verdict(arm, direction) for _, arm in arms]
    parts = [f"{name} {diff(arm)}{unadjusted_note(arm)}" for name, arm in arms]
    if len(set(verdicts)) == 1:
        return f'*"{quote}"* {verdicts[0]}: {"; ".join(parts)}.'
    each = [f"{v} for {name}" for v, (name, _) in zip(verdicts, arms, strict=True)]
    return f'*"{quote}"* {listing(each)}: {"; ".join(parts)}.'


def combined(study: Study) -> str:
    arms = [(name, study.arm("combined", f"activation={a}"))
            for name, a in (("ReLU", "relu"), ("leaky ReLU", "leaky_relu"))]  # fmt: skip
    target = 0.92
    where = []
    for name, arm in arms:
        s = arm.headline
        place = "inside" if s.ci_low <= target <= s.ci_high else "outside"
        where.append(f"{place} the 95% CI of our {name} mean ({pct(s.mean)}, "
                     f"{metric_interval('test_acc', s.ci_low, s.ci_high)})")  # fmt: skip
    checks = [c for c in study.reports["combined"].references if c.reference.metric == "test_acc"]
    inside = sum(bool(c.inside) for c in checks)
    text = _claim("The combined wide model beats the base case", arms, +1)
    text += (
        f' *"It reaches 92%"*: 92% lies {listing(where)}, so three seeds neither confirm nor '
        "rule out a 92% average"
        if all(w.startswith("inside") for w in where)
        else f' *"It reaches 92%"*: 92% lies {listing(where)}'
    )
    published = listing([pct(c.reference.value) for c in checks])
    share = "" if inside == len(checks) else f"{inside} of "
    return text + (
        f"; {share}the study's single runs ({published}) lie inside our prediction intervals."
    )


def simple_claims(study: Study) -> list[str]:
    claims = [
        ("Batch norm helps", "batchnorm", [("batch norm", "batchnorm=true")], +1),
        ("Max pooling helps", "pooling", [("max pooling", "pooling=max")], +1),
        ("Dropout helps", "dropout", [("dropout", "dropout=true")], +1),
        ("Plain SGD at lr 1e-3 is far behind Adam", "optimizer", [("SGD", "optimizer=sgd")], -1),
        ("Adam beats RMSprop", "optimizer", [("RMSprop", "optimizer=rmsprop")], -1),
    ]
    return [
        _claim(quote, [(name, study.arm(exp, label)) for name, label in arms], direction)
        for quote, exp, arms, direction in claims
    ]


def _finals(arm: Arm) -> dict[int, float]:
    return {run.seed: run.final("test_acc") for run in arm.runs}


def _pair(a: Arm, b: Arm) -> tuple[str, bool]:
    """'+0.17 pp [−1.2, +1.5], Welch t, p = 0.61' for a − b, and whether p < ALPHA."""
    c = compare(_finals(a), _finals(b))
    ci = interval(c.diff_low * 100, c.diff_high * 100, sign=True)
    return f"{signed(c.diff * 100)} pp {ci}, {c.test}, p {_p(c.p_value)}", c.p_value < ALPHA


def activations(study: Study) -> str:
    names = {"leaky_relu": "leaky ReLU", "relu": "ReLU", "tanh": "tanh"}
    arms = {a: study.arm("activation", f"activation={a}") for a in names}
    claimed = ["leaky_relu", "relu", "tanh"]
    ours = sorted(arms, key=lambda a: -arms[a].headline.mean)
    means = ", ".join(f"{names[a]} {pct(arms[a].headline.mean)}" for a in ours)
    order = "in that order" if ours == claimed else "in another order"
    pair, pair_significant = _pair(arms["leaky_relu"], arms["relu"])
    relu_above_tanh = verdict(arms["relu"], +1) == "holds"
    holds = ours == claimed and pair_significant and relu_above_tanh
    return (
        f'*"Leaky ReLU beats ReLU beats tanh"* {"holds" if holds else "is not established"}: '
        f"our means come out {order} ({means}); against tanh, ReLU "
        f"{diff(arms['relu'])} and leaky ReLU {diff(arms['leaky_relu'])}; leaky ReLU minus ReLU "
        f"{pair} (one comparison, unadjusted)."
    )


def learning_rates(study: Study) -> str:
    report = study.reports["learning_rate"]
    best = max(report.arms, key=lambda a: a.headline.mean)
    claimed = study.arm("learning_rate", "lr=0.0008")
    holds = best is claimed and verdict(claimed, +1) == "holds"
    top = "has the highest mean" if best is claimed else f"is not the highest ({best.label} is)"
    level = [a.label.removeprefix("lr=") for a in report.arms
             if a.comparison.p_adjusted >= ALPHA and a is not claimed]  # fmt: skip
    lower = [a.label.removeprefix("lr=") for a in report.worse]
    return (
        f'*"lr 0.0008 is best"* {"holds" if holds else "is not established"}: it {top} '
        f"({pct(claimed.headline.mean)}), {diff(claimed)} against 0.001 (the base case). "
        f"Nor {'does' if len(level) == 1 else 'do'} {listing(level)} differ significantly "
        "from 0.001; what holds is that "
        f"{listing(lower)} are significantly below it."
    )


def fc_against_lenet(study: Study) -> str:
    fc, lenet = study.arm("fc_baseline"), study.arm("lenet_baseline")
    published = {  # the study's value for each experiment's base arm (its own run of it)
        r.name: c.reference.value
        for r in study.reports.values()
        for c in r.references
        if c.arm is r.base and c.reference.metric == "test_acc"
    }
    lenet_runs = [v for name, v in published.items() if name != "fc_baseline"]
    gap = published["fc_baseline"] - published["lenet_baseline"]
    pair, significant = _pair(fc, lenet)
    same = (fc.headline.mean > lenet.headline.mean) == (gap > 0)
    spread = max(lenet_runs) - min(lenet_runs)
    judgement = "holds" if significant and same else "is not established"
    return (
        f'*"The FC network beats LeNet-5"* (the study: {pct(published["fc_baseline"])} against '
        f"{pct(published['lenet_baseline'])}) {judgement}: "
        f"our means {'agree' if same else 'reverse it'}, {pct(fc.headline.mean)} against "
        f"{pct(lenet.headline.mean)} ({pair}). The study's own LeNet-5 base case, published "
        f"in {len(lenet_runs)} experiments, ranges from {pct(min(lenet_runs))} to "
        f"{pct(max(lenet_runs))}: {spread * 100:.2f} pp, "
        f"{'more' if spread > abs(gap) else 'less'} than the {abs(gap) * 100:.2f} pp gap."
    )


def losses(study: Study) -> str:
    arms = [("MSE", study.arm("loss", "loss=mse")),
            ("multi-margin", study.arm("loss", "loss=multi_margin"))]  # fmt: skip
    differ = [name for name, arm in arms if arm.comparison.p_adjusted < ALPHA]
    head = "differs" if len(differ) == 1 else "differ"
    who = listing(differ) + f" {head}" if differ else "neither loss differs"
    parts = "; ".join(f"{name} {diff(arm)}{unadjusted_note(arm)}" for name, arm in arms)
    return f"Losses: against cross-entropy, {who} significantly: {parts}."


def batch_sizes(study: Study) -> str:
    report = study.reports["batch_size"]
    significant = [a.label.removeprefix("batch_size=") for a in report.arms
                   if a.comparison.p_adjusted < ALPHA]  # fmt: skip
    low = sorted(report.arms, key=lambda a: a.headline.mean)[:2]
    lows = listing([f"{a.label.removeprefix('batch_size=')} ({signed(a.comparison.diff * 100)} pp)"
                    for a in low])  # fmt: skip
    notes = "".join(
        f" For {a.label.removeprefix('batch_size=')}, the 95% CI of the difference excludes 0 and "
        f"p = {format_p(a.comparison.p_value)} unadjusted, but not after Holm's adjustment."
        for a in low
        if unadjusted_note(a)
    )
    verb = "differs" if len(significant) == 1 else "differ"
    which = f"only {listing(significant)} {verb}" if significant else "none differs"
    return f"Batch sizes: against 100, {which} significantly; the lowest means are {lows}.{notes}"


def schedules(study: Study) -> str:
    report = study.reports["scheduler"]
    worse = listing([a.label for a in report.worse]) if report.worse else "none"
    better = listing([a.label for a in report.better]) if report.better else "none"
    return (
        f"Of the {len(report.arms)} StepLR schedules, significantly below no schedule: {worse}; "
        f"significantly above it: {better}."
    )


# ------------------------------------------------------------------ what more seeds could do

# Each claim of one arm against its base case: (name, experiment, arm label, direction).
SEED_CLAIMS = [
    ("the combined model with ReLU", "combined", "activation=relu", +1),
    ("the combined model with leaky ReLU", "combined", "activation=leaky_relu", +1),
    ("batch norm", "batchnorm", "batchnorm=true", +1),
    ("SGD below Adam", "optimizer", "optimizer=sgd", -1),
    ("max pooling", "pooling", "pooling=max", +1),
    ("dropout", "dropout", "dropout=true", +1),
    ("ReLU over tanh", "activation", "activation=relu", +1),
    ("leaky ReLU over tanh", "activation", "activation=leaky_relu", +1),
    ("lr 0.0008", "learning_rate", "lr=0.0008", +1),
    ("RMSprop below Adam", "optimizer", "optimizer=rmsprop", -1),
]


def _seeds(arm: Arm, power, alpha: float) -> str:
    """Seeds per arm for the t-test to detect the arm's measured difference with 80% power."""
    n = seeds_needed(abs(arm.comparison.diff), power.sd, alpha, paired=False)
    return f"{n:,}" if n else "more than 100,000"


def _power_range(study: Study) -> str:
    powers = {name: r.power for name, r in study.reports.items() if r.arms and r.power}
    compared = {n: p for n, p in powers.items() if study.reports[n].base is not None}
    low, high = (min(compared, key=lambda n: key(compared[n])) for key in (
        lambda p: p.detectable, lambda p: -p.detectable))  # fmt: skip
    needed = sorted(p.seeds_needed for p in compared.values())
    sds = sorted(p.sd for p in compared.values())
    effect = next(iter(compared.values())).effect
    return (
        f"With {compared[low].seeds} seeds, an experiment's test detects with {POWER:.0%} power "
        f"a difference from the base case of {compared[low].detectable * 100:.2f} pp ({low}, "
        f"{compared[low].comparisons} arm compared) to {compared[high].detectable * 100:.2f} pp "
        f"({high}, {compared[high].comparisons} arms, Holm's first step at 0.05/"
        f"{compared[high].comparisons}); a difference of {effect * 100:.2f} pp would take "
        f"{needed[0]} to {needed[-1]} seeds per arm (sd pooled over each experiment's arms, "
        f"{sds[0] * 100:.2f} to {sds[-1] * 100:.2f} pp; the report's index has the table)."
    )


def more_seeds(study: Study) -> str:
    """Which conclusions more seeds could still overturn, and how many seeds that would take."""
    arms = [(name, study.arm(exp, label), study.reports[exp].power, direction)
            for name, exp, label, direction in SEED_CLAIMS]  # fmt: skip
    total = sum(a.comparison is not None for r in study.reports.values() for a in r.arms)
    study_alpha = ALPHA / total
    held = [(n, a, p) for n, a, p, d in arms if verdict(a, d) == "holds"]
    open_ = [(n, a, p) for n, a, p, d in arms if verdict(a, d) != "holds"]
    survive = [n for n, a, _ in held if a.comparison.p_study < ALPHA]
    fall = [(n, a, p) for n, a, p in held if a.comparison.p_study >= ALPHA]
    held_text = (
        f"Of the conclusions that hold, {listing(survive) if survive else 'none'} "
        f"{'stays' if len(survive) == 1 else 'stay'} significant with Holm over all {total} "
        "comparisons of the study at once. The others rest on Holm within their experiment "
        "alone and are the ones more seeds could still overturn; to hold at the study-wide "
        f"level (α = 0.05/{total}), if their measured difference is real, they would need these "
        "seeds per arm: "
        + "; ".join(
            f"{n} ({signed(a.comparison.diff * 100)} pp, Holm p over all {total} "
            f"{_p(a.comparison.p_study)}): {_seeds(a, p, study_alpha)}"
            for n, a, p in fall
        )  # fmt: skip
        + "."
    )
    open_text = (
        "The conclusions not established could still be, if the difference we measured is "
        "real; seeds per arm to detect it with 80% power in its experiment: "
        + "; ".join(
            f"{n} ({signed(a.comparison.diff * 100)} pp): {_seeds(a, p, ALPHA / p.comparisons)}"
            for n, a, p in open_
        )  # fmt: skip
        + "."
    )
    compared = [a for r in study.reports.values() for a in r.arms if a.comparison is not None]
    pooled = [a for a in compared if verdict_of(a, a.pooled) != a.verdict]
    head = paragraph(
        f"**What more seeds could change.** {_power_range(study)} So *not established* mostly "
        "means too small for three seeds to see. The pooled-variance analysis (Dunnett's test, "
        "one sd per experiment: more degrees of freedom, but only right if the arms share one "
        f"spread) gives {len(pooled)} of the {len(compared)} arms another verdict than the "
        "default; the summaries list them."
    )
    return head + "\n\n" + "\n".join(bullet(text) for text in (held_text, open_text))


# ------------------------------------------------------------- published values outside


def _beyond(check: ReferenceCheck) -> tuple[str, float]:
    """How far a value outside our prediction interval lies beyond it, and as a share of it."""
    ours, value, metric = check.ours, check.reference.value, check.reference.metric
    edge = ours.pi_high if value > ours.pi_high else ours.pi_low
    share = abs(value - edge) / (ours.pi_high - ours.pi_low)
    unit = " pp" if metric.endswith("_acc") else ""
    side = "above" if value > edge else "below"
    distance = metric_text(metric, abs(value - edge)) + unit
    return f"{distance} {side} it, {share:.0%} of its width", share


def _value(metric: str, value: float) -> str:
    return metric_text(metric, value) + ("%" if metric.endswith("_acc") else "")


def outside(study: Study) -> str:
    checks = study.checks
    out = [c for c in checks if c.inside is False]
    chance = 1 - CONFIDENCE
    tail = scipy_stats.binom.sf(len(out) - 1, len(checks), chance)
    lines = []
    for check in sorted(out, key=lambda c: _beyond(c)[1]):
        r, ours = check.reference, check.ours
        name = next(n for n, rep in study.reports.items() if check in rep.references)
        lines.append(
            f"{name}, {check.arm.label}: {metric(r.metric).label} {_value(r.metric, r.value)} "
            f"(our interval {metric_interval(r.metric, ours.pi_low, ours.pi_high)}; "
            f"{_beyond(check)[0]})"
        )
    head = paragraph(
        f"**Published values outside our intervals.** {len(out)} of the {len(checks)} published "
        f"values lie outside our 95% prediction interval for one run. If the study's runs came "
        f"from the same distributions as ours, {len(checks)} x {chance:.0%} = "
        f"{len(checks) * chance:.1f} would by chance, and {len(out)} or more with probability "
        f"{tail:.2f} (binomial, taking the values as independent, which they are not quite: "
        "an arm's loss and accuracy come from the same runs). How far each lies outside, "
        "closest first:"
    )
    return head + "\n\n" + "\n".join(bullet(line) for line in lines)


def _survives(o) -> bool:
    """An offset whose 95% CI excludes 0 and whose sign test is below ALPHA."""
    return (o.ci_low > 0 or o.ci_high < 0) and o.sign_p < ALPHA


def _offset_part(name: str, o, values: str) -> str:
    shown, unit = metric(name), " pp" if name.endswith("_acc") else ""
    ci = interval(o.ci_low * shown.scale, o.ci_high * shown.scale, shown.spec, sign=True)
    return (
        f"over {values}, {signed(o.mean * shown.scale, shown.spec)}{unit} {ci}, {o.higher} "
        f"higher and {o.lower} lower than our mean (sign test p {_p(o.sign_p)})"
    )


def offset_text(study: Study) -> str:
    """The systematic offset: published minus ours over all values of a metric, and over one
    value per experiment (an experiment's values share its runs); systematic only if both."""
    reports = list(study.reports.values())
    offsets, per_experiment = reference_offsets(reports), reference_offsets(reports, True)
    parts, verdicts = [], []
    for name, o in offsets.items():
        label, one = metric(name).label, per_experiment[name]
        parts.append(_offset_part(name, o, f"the {o.n} {label} values"))
        parts.append(_offset_part(name, one, f"one {label} value per experiment ({one.n})"))
        kept = _survives(o) and _survives(one)
        verdicts.append(f"the {label} offset {'survives' if kept else 'does not survive'} that")
    n = min(c.ours.n for c in study.checks)
    low, high = sd_range(n - 1)
    return paragraph(
        "**Taken together**, published minus our mean, with its 95% CI, which a check of one "
        f"value at a time cannot see: {listing(parts)}. An experiment's values share its runs "
        "and its base case, so an offset counts as systematic only where it holds (CI "
        f"excluding 0, sign test below {ALPHA:.2f}) with one value per experiment too: "
        f"{listing(verdicts)}. And each interval above is only as wide as the sd of {n} runs "
        f"makes it: with {n - 1} degrees of freedom the true sd may be {low:.2f} to {high:.1f} "
        "times the measured one."
    )


def combined_loss(study: Study) -> str:
    checks = study.reports["combined"].references
    losses = [c for c in checks if c.reference.metric == "train_loss"]
    accuracies = [c for c in checks if c.reference.metric == "test_acc"]
    ratios = listing([f"{c.reference.value / c.ours.mean:.2f}x" for c in losses])
    means = listing([metric_text("train_loss", c.ours.mean) for c in losses])
    agree = all(c.inside for c in accuracies)
    return paragraph(
        f"The combined models' published training losses are {ratios} our means ({means}), "
        f"while their published test accuracies lie "
        f"{'inside' if agree else 'partly outside'} our intervals. No test here explains the "
        "gap: the study measures training loss as this project does (the mean of the epoch's "
        "batch losses, [docs/study.md](docs/study.md)), so its cause is unknown."
    )


def copy_error(study: Study) -> str:
    check = next(c for c in study.reports["learning_rate"].references
                 if c.arm.label == "lr=0.0001" and c.reference.metric == "test_acc")  # fmt: skip
    screenshot = float(re.search(r"screenshot shows (0\.\d+)", check.reference.note).group(1))
    ours = check.ours
    inside = {v: ours.pi_low <= v <= ours.pi_high for v in (check.reference.value, screenshot)}
    if inside[check.reference.value] and not inside[screenshot]:
        judgement = "so the screenshot is the copy error"
    else:
        judgement = "so our runs do not say which one is the copy error"
    return paragraph(
        f"The study's lr = 0.0001 entry: its text says {pct(check.reference.value)}, its "
        f"screenshot {pct(screenshot)}. Our runs give {pct(ours.mean)}, with a 95% prediction "
        f"interval {metric_interval('test_acc', ours.pi_low, ours.pi_high)} that "
        f"{'holds' if inside[check.reference.value] else 'misses'} the text's value and "
        f"{'holds' if inside[screenshot] else 'misses'} the screenshot's, {judgement}."
    )


def conclusions(study: Study) -> str:
    bullets = [combined(study), *simple_claims(study), activations(study),
               learning_rates(study), fc_against_lenet(study), losses(study),
               batch_sizes(study), schedules(study)]  # fmt: skip
    text = rule(study) + "\n\n" + "\n".join(bullet(text) for text in bullets)
    return text + ("\n\n" + settled(study) if settled(study) else "")


NAMES = {"pooling=max": "max pooling", "batchnorm=true": "batch norm", "dropout=true": "dropout"}


def settled(study: Study) -> str:
    """What `settle` decided, from its records (settle.json) replayed over the committed runs."""
    reports = [r for r in study.reports.values() if r.settled]
    if not reports:
        return ""
    record = reports[0].settle
    files = " ".join(f"experiments/study/{name}.toml" for name in record["experiments"])
    runs = sum(entry["trained"] for entry in record["rounds"])
    calls = []
    for report in reports:
        for arm, v in report.settled:
            name = NAMES.get(arm.label, f"{report.name} {arm.label}")
            if v.look == 0:
                calls.append(f"{name} is still open")
                continue
            what = (
                ("higher than the base case" if v.sign > 0 else "lower than the base case")
                if v.sign
                else f"within ±{record['effect'] * 100:g} pp of it"
            )
            calls.append(f"{name} is {what} ({signed(v.diff * 100)} pp at look {v.look}, "
                         f"{v.seeds} seeds per arm)")  # fmt: skip
    return paragraph(
        f"**Settled.** `fmnist-ray settle {files} --results results --effect "
        f"{record['effect'] * 100:g} --max-seeds {record['looks'][-1]}` added seeds in "
        f"{len(record['rounds'])} rounds ({runs} runs) to the arms still open and to their "
        "shared base case, testing after each round so that false positives stay at "
        f"{record['alpha']:g} over its {record['comparisons']} comparisons and all looks "
        f"(`results/*/settle.json`): {listing(calls)}. A 'within' call is wrong at most "
        f"{1 - record['power']:.0%} of the time. The base case's added seeds enter every "
        "experiment that shares it, as the seeds column of the tables shows."
    )


def prose(study: Study, tables: str) -> str:
    """The whole section below its heading: what was run, its cost, the tables, the judgements."""
    parts = [intro(study), cost(study), tables_intro(study), tables, conclusions(study),
             more_seeds(study), outside(study), offset_text(study), combined_loss(study),
             copy_error(study)]  # fmt: skip
    return "\n\n".join(part.strip("\n") for part in parts)
