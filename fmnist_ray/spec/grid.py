"""Experiment files (`experiments/NAME.toml`): read, validate every entry before anything runs
(all problems reported at once), and expand into `RunConfig`s in a stable order."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .config import (
    CONFIG_FIELDS,
    SEED_FIELD,
    ConfigError,
    Resources,
    RunConfig,
    describe_errors,
    varying_fields,
)

TOP_LEVEL_KEYS = ("description", "seeds", "base", "grid", "variants", "resources")


class ExperimentError(ConfigError):
    """Everything wrong with one experiment file, one problem per line."""


@dataclass(frozen=True)
class Experiment:
    """A validated experiment: its runs in a stable order, duplicates collapsed."""

    name: str
    path: Path
    description: str
    seeds: tuple[int, ...]
    base: dict[str, Any]
    grid: dict[str, list[Any]]
    variants: tuple[dict[str, Any], ...]
    resources: Resources
    runs: tuple[RunConfig, ...] = field(default=())

    @functools.cached_property
    def axes(self) -> list[str]:
        """Config fields that take more than one value across the runs (seed excluded); computed
        once per experiment (it reads every run), so a label per run costs the same at any size."""
        return varying_fields(cfg.model_dump() for cfg in self.runs)

    @property
    def base_config(self) -> RunConfig:
        """The experiment's [base] with the first seed: the reference arm of a report."""
        return RunConfig(**self.base, **{SEED_FIELD: self.seeds[0]})


def _check_table(problems: list[str], file: str, section: str, value: Any) -> dict:
    if not isinstance(value, dict):
        problems.append(f"{file}: [{section}] must be a table of options, got {value!r}")
        return {}
    for key in value:
        if key == SEED_FIELD:
            problems.append(
                f"{file}: {section}.{key}: set seeds with the top-level `seeds = [...]`"
            )
        elif key not in CONFIG_FIELDS:
            problems.append(
                f"{file}: {section}.{key}: unknown option; known options are: "
                + ", ".join(f for f in CONFIG_FIELDS if f != SEED_FIELD)
            )
    return {k: v for k, v in value.items() if k in CONFIG_FIELDS and k != SEED_FIELD}


def _parse_seeds(problems: list[str], file: str, value: Any) -> tuple[int, ...]:
    ok = (
        isinstance(value, list)
        and value
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value)
    )
    if not ok:
        problems.append(
            f"{file}: seeds: {value!r} is not allowed: need a non-empty list of integers >= 0"
        )
        return (0,)
    return tuple(dict.fromkeys(value))


def _parse_resources(problems: list[str], file: str, value: Any) -> Resources:
    if not isinstance(value, dict):
        problems.append(f"{file}: [resources] must be a table with `gpus` and/or `cpus`")
        return Resources()
    try:
        return Resources(**value)
    except ValidationError as error:
        for item in error.errors():
            key = ".".join(map(str, item["loc"]))
            if item["type"] == "extra_forbidden":
                problems.append(f"{file}: resources.{key}: unknown; allowed: gpus, cpus")
            else:
                why = item["msg"]
                problems.append(
                    f"{file}: resources.{key}: {item.get('input')!r} is not allowed: {why}"
                )
        return Resources()


def load_experiment(path: str | Path, text: str | None = None) -> Experiment:
    """Read and fully validate an experiment file; raise ExperimentError listing every problem.

    `text`: the file's content when it was read elsewhere (a results tree on object storage);
    `path` then only names it."""
    file = str(path)
    path = Path(path)
    raw = _read_toml(path, text)
    problems: list[str] = []
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            problems.append(
                f"{file}: {key}: unknown top-level key; allowed: {', '.join(TOP_LEVEL_KEYS)}"
                + (" (did you mean to put it under [base]?)" if key in CONFIG_FIELDS else "")
            )
    description = raw.get("description", "")
    if not isinstance(description, str):
        problems.append(f"{file}: description: must be a string, got {description!r}")
        description = ""
    seeds = _parse_seeds(problems, file, raw.get("seeds", [0]))
    base = _check_table(problems, file, "base", raw.get("base", {}))
    grid = _check_table(problems, file, "grid", raw.get("grid", {}))
    for key, values in list(grid.items()):
        if not isinstance(values, list) or not values:
            problems.append(
                f"{file}: grid.{key}: {values!r} is not allowed: a grid entry is a non-empty list "
                f"of values (for a single value, put it under [base])"
            )
            del grid[key]
    variants = _parse_variants(problems, file, raw.get("variants", []), grid)
    resources = _parse_resources(problems, file, raw.get("resources", {}))
    runs = _expand(problems, file, base, grid, variants, seeds) if not problems else []
    if problems:
        raise ExperimentError(list(dict.fromkeys(problems)))
    return Experiment(
        name=path.stem,
        path=path,
        description=description,
        seeds=seeds,
        base=base,
        grid=grid,
        variants=tuple(variants),
        resources=resources,
        runs=tuple(runs),
    )


def _read_toml(path: Path, text: str | None) -> dict[str, Any]:
    """The file's TOML as a dict, or an ExperimentError saying why it can't be read."""
    file = str(path)
    try:
        return tomllib.loads(path.read_text() if text is None else text)
    except FileNotFoundError:
        raise ExperimentError([f"{file}: no such experiment file"]) from None
    except IsADirectoryError:
        raise ExperimentError([f"{file}: is a folder, expected an experiment .toml file"]) from None
    except tomllib.TOMLDecodeError as error:
        raise ExperimentError([f"{file}: not valid TOML: {error}"]) from None
    except UnicodeDecodeError:
        raise ExperimentError([f"{file}: not a text file"]) from None


def _parse_variants(
    problems: list[str], file: str, raw: Any, grid: dict[str, list[Any]]
) -> list[dict[str, Any]]:
    """The [[variants]] override sets; a key may not be both swept and set by a variant."""
    if not isinstance(raw, list):
        problems.append(f"{file}: variants: use [[variants]] tables (a list of override sets)")
        return []
    variants = []
    for i, variant in enumerate(raw):
        checked = _check_table(problems, file, f"variants[{i}]", variant)
        for key in checked.keys() & grid.keys():
            problems.append(
                f"{file}: variants[{i}].{key}: also in [grid]; a key is either swept in [grid] "
                f"or set by variants, not both"
            )
        variants.append(checked)
    return variants


def _expand(
    problems: list[str],
    file: str,
    base: dict[str, Any],
    grid: dict[str, list[Any]],
    variants: list[dict[str, Any]],
    seeds: tuple[int, ...],
) -> list[RunConfig]:
    """Variants (outer) x grid (in file order) x seeds (inner); the same config kept once."""
    runs: dict[str, RunConfig] = {}
    for v, variant in enumerate(variants or [{}]):

        def where(name: str, v: int = v, variant: dict = variant) -> str:
            if name in variant:
                return f"{file}: variants[{v}].{name}"
            if name in grid:
                return f"{file}: grid.{name}"
            return f"{file}: {'base.' if name in base else ''}{name}"

        for combo in itertools.product(*grid.values()):
            for seed in seeds:
                options = base | dict(zip(grid, combo)) | variant | {SEED_FIELD: seed}
                try:
                    cfg = RunConfig(**options)
                except ValidationError as error:
                    problems.extend(describe_errors(error, where))
                    continue
                runs.setdefault(cfg.run_id, cfg)
    if not runs and not problems:
        problems.append(f"{file}: expands to no runs")
    return list(runs.values())


def with_seeds(experiment: Experiment, count: int) -> Experiment:
    """The experiment with `count` seeds per configuration: its own seeds first, then the
    smallest ones it does not use yet (so the runs it already has keep their ids)."""
    seeds = list(experiment.seeds[:count])
    candidate = 0
    while len(seeds) < count:
        if candidate not in experiment.seeds:
            seeds.append(candidate)
        candidate += 1
    problems: list[str] = []
    runs = _expand(problems, str(experiment.path), experiment.base, experiment.grid,
                   list(experiment.variants), tuple(seeds))  # fmt: skip
    if problems:  # the same options validated when the file was read
        raise ExperimentError(problems)
    return dataclasses.replace(experiment, seeds=tuple(seeds), runs=tuple(runs))


def experiment_files(paths: list[str | Path]) -> list[Path]:
    """The experiment files named: a file as given, a folder as its `*.toml` (sorted)."""
    files: list[Path] = []
    for path in map(Path, paths):
        files += sorted(path.glob("*.toml")) if path.is_dir() else [path]
    return list(dict.fromkeys(files))


def load_experiments(paths: list[str | Path]) -> list[Experiment]:
    """Load and validate every file first; raise one ExperimentError with every problem of every
    file, so nothing starts while any of them is wrong."""
    problems: list[str] = []
    experiments: list[Experiment] = []
    for path in map(Path, paths):
        if path.is_dir() and not any(path.glob("*.toml")):
            problems.append(f"{path}: folder has no experiment files (*.toml)")
    for file in experiment_files(paths):
        try:
            experiments.append(load_experiment(file))
        except ExperimentError as error:
            problems += error.problems
    by_name: dict[str, Path] = {}
    for exp in experiments:
        if exp.name in by_name:
            problems.append(
                f"{exp.path}: experiment name {exp.name!r} is also {by_name[exp.name]}: "
                "results are filed by name, so names must differ"
            )
        by_name.setdefault(exp.name, exp.path)
    if not problems and not experiments:
        problems.append("no experiment files given")
    if problems:
        raise ExperimentError(problems)
    return experiments
