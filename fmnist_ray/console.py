"""What `plan` and `run` print: the plan's tables and estimates, and a grid's summary. Plain
text built from plans and outcomes, so the commands only echo it."""

from __future__ import annotations

from typing import Any

from .outcome import RunOutcome, interrupted_message
from .planning.plan import Plan, PlannedRun, run_devices
from .planning.sizing import MOST_RUNS_PER_GPU
from .runner.progress import clock
from .spec.config import SEED_FIELD, format_value
from .spec.grid import Experiment
from .spec.metrics import HEADLINE
from .store.devices import describe_devices, mixed_warning
from .words import plural

PLAN_STATUSES = ("done", "to file", "pending", "failed", "corrupt")  # a run, from one folder


def format_table(header: list[str], rows: list[list[Any]]) -> str:
    """A plain fixed-width text table."""
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run_status(run: PlannedRun, experiment: str) -> str:
    """A run as seen from one experiment's folder."""
    if experiment in run.done_in:
        return "done"
    if run.done:
        return "to file"
    if experiment in run.corrupt_in:
        return "corrupt"
    return "failed" if run.failed_before else "pending"


def _counts(plan: Plan, exp: Experiment) -> dict[str, int]:
    counts = dict.fromkeys(PLAN_STATUSES, 0)
    for run in _runs_of(plan, exp):
        counts[run_status(run, exp.name)] += 1
    return counts


def _runs_of(plan: Plan, exp: Experiment) -> list[PlannedRun]:
    by_id = {run.run_id: run for run in plan.runs}
    return [by_id[cfg.run_id] for cfg in exp.runs]


def plan_overview(plan: Plan, slots: int) -> str:
    """One row per experiment, the unique and done counts, and the wall-time estimate."""
    rows = []
    devices = {exp.name: run_devices(plan, exp) for exp in plan.experiments}  # of the done runs
    for exp in plan.experiments:
        shared = sum(len(run.experiments) > 1 for run in _runs_of(plan, exp))
        counts = _counts(plan, exp)
        ran_on = describe_devices(devices[exp.name])
        rows.append([exp.name, len(exp.runs), shared, *counts.values(), ran_on,
                     ", ".join(exp.axes) or "-"])  # fmt: skip
    unique, corrupt = plan.runs, len(plan.corrupt)
    done, failed = sum(run.done for run in unique), sum(run.failed_before for run in unique)
    wall, bound = plan.wall_seconds(slots)
    work = sum(run.seconds for run in plan.todo)
    lines = [
        format_table(["experiment", "runs", "shared", *PLAN_STATUSES, "ran on", "varies"], rows),
        *mixed_lines(devices),
        "",
        f"{plural(len(plan.experiments), 'experiment')}: {plan.planned} planned runs, "
        f"{len(unique)} unique ({plan.planned - len(unique)} shared by several experiments "
        f"train once); {done} done, {len(unique) - done - failed} pending, {failed} failed"
        + (
            f"; {plural(corrupt, 'invalid result file')} (`run` moves them to quarantine/ and "
            "trains their runs again)"
            if corrupt
            else ""
        ),  # fmt: skip
        f"to train: {plural(len(plan.todo), 'run')}, about {work / 3600:.2f} run-hours on one "
        f"CPU thread each; on {plural(slots, 'slot')}, longest first: about {clock(wall)} wall "
        f"(lower bound {clock(bound)}). Estimates for CPU training; a GPU is far faster.",
        f"results: {plan.root}",
    ]
    return "\n".join(lines)


def mixed_lines(devices: dict[str, list[str]]) -> list[str]:
    """A warning per experiment whose done runs mix CPU and GPU runs (`devices`: by name)."""
    warnings = [mixed_warning(name, labels) for name, labels in devices.items()]
    return ["", *(f"warning: {line}" for line in warnings if line)] if any(warnings) else []


def run_table(plan: Plan, exp: Experiment) -> str:
    """Every run of one experiment: its values, status and estimated duration."""
    fields = [*exp.axes, SEED_FIELD]
    rows = [
        [run.run_id, *(format_value(getattr(run.config, f)) for f in fields),
         run_status(run, exp.name), clock(run.seconds)]
        for run in _runs_of(plan, exp)
    ]  # fmt: skip
    counts = _counts(plan, exp)
    shown = ", ".join(f"{n} {name}" for name, n in counts.items()
                      if n or name not in ("to file", "corrupt"))  # fmt: skip
    gpus = exp.resources.gpus
    auto = (
        f"auto (with GPUs: as many runs per GPU as measured memory holds, at most "
        f"{MOST_RUNS_PER_GPU}; else 0)"
    )
    gpu_text = f"{gpus:g}" if gpus is not None else auto
    return "\n".join([
        "",
        f"{exp.name}: {exp.description}".rstrip(": "),
        f"{len(exp.runs)} runs: {shown}; seeds {', '.join(map(str, exp.seeds))}; "
        f"varies: {', '.join(exp.axes) or 'nothing but the seed'}",
        f"resources per run: {exp.resources.cpus:g} CPU, GPU {gpu_text}",
        f"done runs ran on: {describe_devices(run_devices(plan, exp))}",
        "",
        format_table(["run_id", *fields, "status", "estimate"], rows),
    ])  # fmt: skip


def grid_summary(plan: Plan, outcome: RunOutcome) -> tuple[str, list[str]]:
    """(the table of what this invocation trained and a line of counts, lines for stderr)."""
    order = {run.run_id: i for i, run in enumerate(plan.runs)}
    rows = []
    for item in sorted(outcome.trained, key=lambda item: order[item.run_id]):
        rows.append([item.run_id, item.label, item.status,
                     f"{item.final[HEADLINE.name]:.4f}", f"{item.seconds:.0f}"])  # fmt: skip
    for item in outcome.failed:
        rows.append([item.run_id, item.label, "FAILED", "-", "-"])
    table = format_table(["run_id", "run", "status", HEADLINE.name, "seconds"], rows)
    counts = (
        f"{len(outcome.trained)} trained, {len(outcome.reused)} already done, "
        f"{len(outcome.failed)} failed"
        + (f", {len(outcome.cancelled)} cancelled" if outcome.cancelled else "")
        + (f", {len(outcome.not_saved)} not saved" if outcome.not_saved else "")
        + f" -> {plan.root}"
    )
    err = [f"failed: {item.run_id}: {item.error} (details: "
           f"{item.paths[0] if item.paths else 'not recorded'})"
           for item in outcome.failed]  # fmt: skip
    err += [f"not saved: {item.run_id}: {item.error}; its history is kept at {item.paths[0]}"
            for item in outcome.not_saved]  # fmt: skip
    if outcome.not_saved:
        err.append("stopped: the results destination is failing; pending runs were cancelled. "
                   "Fix it and run the same command to resume.")  # fmt: skip
    if outcome.interrupted:
        err.append(interrupted_message(outcome.signal))
    return ("\n" + table + "\n" if rows else "") + "\n" + counts, err


def seeds_table(sized: list[tuple[Experiment, Any, Plan | None]], slots: int) -> str:
    """`plan --seeds-for`: per experiment, what its results so far can detect, the seeds per arm
    the difference needs, and what running the file with that many seeds would still cost.
    `sized`: (experiment, its report sized for the difference, the plan with those seeds)."""
    header = ["experiment", "base case n", "pooled sd (pp)", "df", "arms compared",
              "detectable now (pp)", "seeds needed", "runs", "to train", "run-hours",
              "wall"]  # fmt: skip
    rows, effect, notes = [], None, []
    for exp, report, plan in sized:
        power = report.power
        if report.base is None or power is None:
            notes.append(f"{exp.name}: no results for its base case under the results root "
                         "(run it first): no estimate")  # fmt: skip
            rows.append([exp.name] + ["-"] * (len(header) - 1))
            continue
        effect = power.effect
        pp = [f"{value * HEADLINE.scale:.2f}" for value in (power.sd, power.detectable)]
        cost = ["-"] * 4
        if plan is not None:
            wall, _ = plan.wall_seconds(slots)
            work = sum(run.seconds for run in plan.todo)
            cost = [len(plan.runs), len(plan.todo), f"{work / 3600:.2f}", clock(wall)]
        needed = power.seeds_needed or "too many"
        rows.append([exp.name, report.base.headline.n, pp[0], power.df, power.comparisons, pp[1],
                     needed, *cost])  # fmt: skip
    head = (
        f"seeds per arm to detect {effect * HEADLINE.scale:.2f} pp of final {HEADLINE.label} from "
        f"the base case, 80% power (the report's t-test at Holm's first step, sd pooled over the "
        "results so far); cost of the file's runs at that many seeds per arm (a base case "
        f"borrowed from another experiment needs them too), on {plural(slots, 'slot')}, longest "
        "first, CPU estimates:"
        if effect is not None
        else "no experiment has results for its base case: nothing to size"
    )
    return "\n".join([head, "", format_table(header, rows), *notes])
