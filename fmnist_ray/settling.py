"""`settle`: seeds in rounds until each arm's comparison with its base case is decided. Every
round adds seeds to the arms still open and to their base case (every experiment sharing it
gains), trains them with `run`'s code, and re-tests with the sequential procedure
(reporting/sequential.py). Its state is the results tree: run ids say which seeds exist, so an
interrupted settle resumes by being called again; ROOT/NAME/settle.json keeps the design (which
must not change between calls) and a line per round that landed."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace

from .reporting.model import SETTLE_FILE
from .reporting.sequential import OPEN, Design, Verdict, replay_all, schedule
from .spec.config import SEED_FIELD, ConfigError, RunConfig, format_value
from .spec.grid import Experiment, with_seeds
from .spec.metrics import HEADLINE
from .store.storage import Location


@dataclass(frozen=True)
class Comparison:
    """One arm of an experiment against its base case: the configs without seed."""

    experiment: str
    label: str  # 'pooling=max'
    arm: RunConfig  # the arm's config at some seed (the seed is replaced per look)
    base: RunConfig
    seeds: tuple[int, ...]  # the seed order: the file's seeds, then the smallest unused ones


@dataclass(frozen=True)
class Status:
    """Where a comparison stands after replaying the seeds found."""

    comparison: Comparison
    verdict: Verdict
    arm_seeds: int  # contiguous seeds of the order with a result
    base_seeds: int
    following: int | None  # seeds per arm at the look after the last one reached

    @property
    def next_seeds(self) -> int | None:
        """Seeds per arm its next look needs (None: decided, or at the cap)."""
        return self.following if self.verdict.decision == OPEN else None


def _key(cfg: RunConfig) -> str:
    fields = cfg.model_dump()
    fields.pop(SEED_FIELD)
    return json.dumps(fields, sort_keys=True, default=str)


def _label(cfg: RunConfig, base: RunConfig) -> str:
    """'pooling=max': the options where the arm differs from its base case."""
    own, other = cfg.model_dump(), base.model_dump()
    changed = [f"{name}={format_value(own[name])}" for name in own
               if name != SEED_FIELD and own[name] != other[name]]  # fmt: skip
    return ", ".join(changed) or "base case"


def seed_order(experiment: Experiment, count: int) -> tuple[int, ...]:
    """The experiment's seeds, then the smallest unused ones (grid.with_seeds' order)."""
    return with_seeds(experiment, count).seeds


def comparisons(experiments: list[Experiment], cap: int) -> list[Comparison]:
    """Every arm of every experiment against its base case ([base] at the first seed), which
    must be a run of one of the experiments given."""
    every = {_key(cfg) for exp in experiments for cfg in exp.runs}
    found, problems = [], []
    for exp in experiments:
        base = exp.base_config
        if _key(base) not in every:
            problems.append(f"{exp.name}: its base case is not a run of any experiment file "
                            "given; pass the file that runs it too")  # fmt: skip
            continue
        arms = {_key(cfg): cfg for cfg in exp.runs if _key(cfg) != _key(base)}
        found += [Comparison(exp.name, _label(cfg, base), cfg, base, seed_order(exp, cap))
                  for cfg in arms.values()]  # fmt: skip
    if problems:
        raise ConfigError(problems)
    return found


def _values(cfg: RunConfig, seeds: tuple[int, ...], finals: dict[str, float]) -> list[float]:
    """The config's final HEADLINE values over the seed order, up to the first one missing."""
    values = []
    for seed in seeds:
        value = finals.get(cfg.model_copy(update={SEED_FIELD: seed}).run_id)
        if value is None:
            break
        values.append(value)
    return values


def statuses_of(found: list[Comparison], finals: dict[str, float], design: Design,
                looks) -> list[Status]:  # fmt: skip
    """Replay every comparison's looks over the results found, all together: with Holm's
    recycling a difference found in one comparison lowers the others' bounds."""
    values = [(_values(c.arm, c.seeds, finals), _values(c.base, c.seeds, finals)) for c in found]
    out = []
    for c, (arm, base), verdict in zip(found, values, replay_all(values, looks, design),
                                       strict=True):  # fmt: skip
        following = verdict.look if verdict.look < len(looks) else None
        next_seeds = looks[following] if following is not None else None
        out.append(Status(c, verdict, len(arm), len(base), next_seeds))
    return out


def round_runs(statuses: list[Status]) -> list[RunConfig]:
    """The runs the next round needs: each open arm up to its next look, and each base case up
    to the most any of its open arms needs. Seeds a round needs that exist are reused (by id)."""
    wanted: dict[str, tuple[RunConfig, tuple[int, ...], int]] = {}
    for s in statuses:
        if s.next_seeds is None:
            continue
        c = s.comparison
        for cfg in (c.arm, c.base):
            have = wanted.get(_key(cfg), (cfg, c.seeds, 0))[2]
            wanted[_key(cfg)] = (cfg, c.seeds, max(have, s.next_seeds))
    return [cfg.model_copy(update={SEED_FIELD: seed})
            for cfg, seeds, count in wanted.values() for seed in seeds[:count]]  # fmt: skip


def round_experiments(experiments: list[Experiment], runs: list[RunConfig]) -> list[Experiment]:
    """The experiments to hand to `run` for one round: each holds the round's runs of its own
    arms (a base case shared by several lands in each of them), and nothing else."""
    keys_of = {exp.name: {_key(cfg) for cfg in exp.runs} for exp in experiments}
    out = []
    for exp in experiments:
        own = tuple(cfg for cfg in runs if _key(cfg) in keys_of[exp.name])
        if own:
            out.append(replace(exp, runs=own))
    return out


def design_record(design: Design, looks: tuple[int, ...], names: list[str]) -> dict:
    return {"effect": design.effect, "alpha": design.alpha, "power": design.power,
            "comparisons": design.comparisons, "spending": design.spending,
            "futility": design.futility, "recycle": design.recycle, "looks": list(looks),
            "experiments": names, "metric": HEADLINE.name}  # fmt: skip


def read_record(folder: Location) -> dict | None:
    path = folder / SETTLE_FILE
    return json.loads(path.read_text()) if path.exists() else None


PROCEDURE = {"spending": "pocock", "futility": "pocock", "recycle": False}  # before 2026-12-05


def procedure_of(root: Location, names: list[str]) -> dict:
    """The procedure (spending, futility, recycling) an earlier settle of these experiments
    recorded, which a resumed one keeps: new defaults apply to new settles only. Records
    from before a key existed ran with PROCEDURE's value."""
    for name in names:
        found = read_record(root / name)
        if found is not None:
            return {key: found.get(key, default) for key, default in PROCEDURE.items()}
    return {}


def check_records(root: Location, names: list[str], record: dict) -> list[dict]:
    """The rounds logged so far; an error where an earlier settle of these experiments used
    another design (changing it mid-way would void the error rate)."""
    rounds = []
    for name in names:
        found = read_record(root / name)
        if found is None:
            continue
        earlier = {key: found.get(key, PROCEDURE.get(key)) for key in record}
        if earlier != record:
            changed = [f"{key} {earlier[key]!r} -> {record[key]!r}"
                       for key in record if earlier[key] != record[key]]  # fmt: skip
            raise ConfigError([f"{name}: an earlier settle used another design "
                               f"({'; '.join(changed)}); keep it, or move {SETTLE_FILE} away "
                               "to start a new one"])  # fmt: skip
        rounds = found.get("rounds", [])
    return rounds


def write_records(root: Location, names: list[str], record: dict, rounds: list[dict]) -> None:
    for name in names:
        folder = root / name
        text = json.dumps(record | {"rounds": rounds}, indent=2)
        (folder / SETTLE_FILE).write_text(text + "\n")


def finals_under(root: Location) -> dict[str, float]:
    """Each ok run's final HEADLINE value under the results root, by run id."""
    from .reporting.load import load_tree

    if not root.exists():
        return {}
    _, runs, _ = load_tree([str(root)])
    return {run.run_id: run.final(HEADLINE.name) for run in runs if run.status == "ok"}


def describe(statuses: list[Status]) -> list[list[str]]:
    """One row per comparison: experiment, arm, seeds, decision, look, difference."""
    rows = []
    for s in statuses:
        v, c = s.verdict, s.comparison
        diff = "-" if v.look == 0 else f"{v.diff * 100:+.2f}"
        rows.append([c.experiment, c.label, str(s.arm_seeds), str(s.base_seeds), v.decision,
                     str(v.look or "-"), diff])  # fmt: skip
    return rows


@dataclass
class Settled:
    """What a settle call ends with: each comparison's status, the rounds logged, the text."""

    statuses: list[Status]
    rounds: list[dict]
    text: str
    finished: bool  # every comparison decided or at the cap


@dataclass(frozen=True)
class Setup:
    """One settle invocation, ready to run or plan."""

    experiments: list[Experiment]
    root: Location
    comparisons: list[Comparison]
    design: Design
    looks: tuple[int, ...]
    record: dict

    @property
    def names(self) -> list[str]:
        return [exp.name for exp in self.experiments]

    def statuses(self, finals: dict[str, float]) -> list[Status]:
        return statuses_of(self.comparisons, finals, self.design, self.looks)


def setup(experiments: list[Experiment], root: Location, effect: float, alpha: float,
          power: float, max_seeds: int, step: int) -> Setup:  # fmt: skip
    """Comparisons, design and looks: the first look at the files' seeds, then every `step`."""
    first = min(len(exp.seeds) for exp in experiments)
    if max_seeds < first or step < 1 or not 0 < alpha < 1 or not 0 < power < 1:
        raise ConfigError([f"settle: need --max-seeds >= the files' {first} seeds, --step >= 1 "
                           f"and alpha, power in (0, 1) (got {max_seeds}, {step}, {alpha}, "
                           f"{power})"])  # fmt: skip
    found = comparisons(experiments, max_seeds)
    if not found:
        raise ConfigError(["settle: the files compare no arm with a base case"])
    design = Design(effect=effect, alpha=alpha, power=power, comparisons=len(found))
    design = replace(design, **procedure_of(root, [exp.name for exp in experiments]))
    looks = schedule(first, step, max_seeds)
    record = design_record(design, looks, [exp.name for exp in experiments])
    return Setup(experiments, root, found, design, looks, record)


def settle_rounds(job: Setup, train: Callable[[list[Experiment]], object], say) -> Settled:
    """Rounds until nothing is open: train what the next looks need, re-test, log the round.
    `train` raises on Ctrl-C (GridInterrupted): the runs finished so far are kept, and the
    next call starts from them."""
    rounds = check_records(job.root, job.names, job.record)
    while True:
        finals = finals_under(job.root)
        statuses = job.statuses(finals)
        runs = round_runs(statuses)
        missing = [cfg for cfg in runs if cfg.run_id not in finals]
        if not missing:
            break
        opened = sum(s.next_seeds is not None for s in statuses)
        reused = len(runs) - len(missing)
        say(f"round {len(rounds) + 1}: {opened} comparisons open; training "
            f"{len(missing)} runs ({reused} of the round's runs exist)")  # fmt: skip
        train(round_experiments(job.experiments, runs))
        landed = finals_under(job.root)
        if not any(cfg.run_id in landed for cfg in missing):
            raise ConfigError([f"settle: round {len(rounds) + 1} added no result (failed runs? "
                               f"see {job.root}/*/failures/): stopping"])  # fmt: skip
        rounds.append({"round": len(rounds) + 1, "trained": len(missing), "open": opened})
        write_records(job.root, job.names, job.record, rounds)
    write_records(job.root, job.names, job.record, rounds)
    text = verdict_table(statuses, job)
    return Settled(statuses, rounds, text, True)


def verdict_table(statuses: list[Status], job: Setup) -> str:
    from .console import format_table

    header = ["experiment", "arm", "seeds", "base seeds", "decision", "look", "diff (pp)"]
    design = job.design
    return "\n".join([
        format_table(header, describe(statuses)),
        f"sequential test: Welch t per arm against its base case, looks at {list(job.looks)} "
        f"seeds, family-wise alpha {design.alpha:g} over {design.comparisons} comparisons"
        f"{' (Holm: a difference found passes its alpha on)' if design.recycles else ''}, "
        f"'smaller than effect' at {design.effect * 100:g} pp wrong at most "
        f"{design.beta:.0%} of the time",
    ])  # fmt: skip


def plan_text(job: Setup, slots: int) -> str:
    """What each round would cost if every comparison open now stayed open to the cap: round
    1 through the project's plan (existing runs reused by id), the rest by the cost model."""
    from .console import format_table
    from .planning.cost import estimate_seconds, makespan
    from .planning.plan import make_plan
    from .runner.progress import clock

    finals = finals_under(job.root)
    statuses = job.statuses(finals)
    done, rows, total = set(finals), [], 0.0
    for number in range(1, len(job.looks) + 1):
        runs = round_runs(statuses)
        new = [cfg for cfg in runs if cfg.run_id not in done]
        if not new:
            break
        if number == 1:
            first = make_plan(round_experiments(job.experiments, runs), job.root)
            durations = [run.seconds for run in first.todo]
        else:
            durations = [estimate_seconds(cfg) for cfg in new]
        total += sum(durations)
        opened = [s for s in statuses if s.next_seeds is not None]
        rows.append([str(number), str(len(opened)), str(max(s.next_seeds for s in opened)),
                     str(len(new)), f"{sum(durations) / 3600:.2f}",
                     clock(makespan(durations, slots))])  # fmt: skip
        done |= {cfg.run_id for cfg in new}
        statuses = [replace(s, following=_after(job.looks, s.next_seeds)) if s.next_seeds
                    else s for s in statuses]  # fmt: skip
    head = ["round", "open", "seeds per arm", "new runs", "run-hours", "wall"]
    lines = [verdict_table(job.statuses(finals), job), ""]
    if not rows:
        return "\n".join(lines + ["nothing to train: every comparison is decided or at the cap"])
    return "\n".join(lines + [
        format_table(head, rows),
        f"at most {sum(int(r[3]) for r in rows)} runs, {total / 3600:.2f} run-hours on "
        f"{slots} slots if nothing settles early; each round re-tests and stops what is decided",
    ])  # fmt: skip


def _after(looks: tuple[int, ...], seeds: int) -> int | None:
    later = [n for n in looks if n > seeds]
    return later[0] if later else None
