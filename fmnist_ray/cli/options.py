"""Command-line options, each declared once: those several commands share, one per `RunConfig`
field (made from its declaration, for `train`), defaults read from the Python API's signatures,
and one command's options lent to another and passed on as its argv (`submit` -> `run`)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import typer

from ..planning.sizing import MOST_RUNS_PER_GPU
from ..spec.config import (
    CONFIG_FIELDS,
    ConfigError,
    RunConfig,
    allowed_values,
    format_value,
    make_config,
    value_type,
)
from ..spec.metrics import HEADLINE

DataDir = Annotated[
    Path | None,
    typer.Option(
        help="Folder with Fashion-MNIST (FashionMNIST/raw/...); it must exist. Default: "
        "$FMNIST_DATA_DIR, else $XDG_CACHE_HOME/fmnist-ray or ~/.cache/fmnist-ray (downloaded "
        "there when missing)."
    ),
]
ResultsDir = Annotated[
    str,
    typer.Option(
        "--results",
        help="Results root: a folder, or a URI pyarrow opens (s3://bucket/prefix?endpoint_override"
        "=HOST:PORT, gs://..., file://...).",
    ),
]
Download = Annotated[
    bool, typer.Option("--download/--no-download", help="Download the data when it is missing.")
]
ExperimentPaths = Annotated[
    list[Path],
    typer.Argument(help="Experiment files or folders of them, e.g. experiments/study/ or lr.toml."),
]


# `run`'s own options (`submit` lends them: `lend_options`).
RayAddress = Annotated[
    str | None,
    typer.Option(
        envvar="RAY_ADDRESS",
        help="Ray cluster to join (e.g. 10.0.0.5:6379 or auto). Default: a local Ray.",
    ),
]
GpusPerRun = Annotated[
    float | None,
    typer.Option(
        help="GPUs per run; fractions pack runs (0.25 = 4 per GPU). Default: the file's "
        "resources table, else, with GPUs, as many runs per GPU as measured memory holds (at "
        f"most {MOST_RUNS_PER_GPU}), 0 without."
    ),
]
CpusPerRun = Annotated[
    float | None,
    typer.Option(help="CPUs per run (torch threads). Default: the file's resources table, else 1."),
]
Force = Annotated[bool, typer.Option(help="Retrain runs that are already done.")]
NumCpus = Annotated[int | None, typer.Option(help="CPUs of the local Ray (default: all).")]
NumGpus = Annotated[int | None, typer.Option(help="GPUs of the local Ray (default: detected).")]
Retries = Annotated[
    int,
    typer.Option(
        help="Retries of a run whose worker or node died. An exception raised by training "
        "is not retried: the same config and seed would raise it again."
    ),
]

# How many seeds a difference needs (`report`, `plan`): in the tables' unit, percentage points.
Effect = Annotated[
    float,
    typer.Option(
        help=f"A difference in final {HEADLINE.label} worth detecting, in percentage points: "
        "each summary says how many seeds per arm would detect it with 80% power."
    ),
]
# `settle`'s own options.
SettleEffect = Annotated[float, typer.Option(
    help="The difference in final test accuracy (pp) to find with --power, and the margin of "
    "'smaller than effect'.")]  # fmt: skip
Alpha = Annotated[float, typer.Option(
    help="Family-wise false-positive rate, over every comparison and every round.")]  # fmt: skip
Power = Annotated[float, typer.Option(
    help="Chance to find a difference of --effect (with enough --max-seeds); 1 - power bounds "
    "wrong 'smaller' calls.")]  # fmt: skip
MaxSeeds = Annotated[int, typer.Option(help="Seeds per arm at most (the last look).")]
Step = Annotated[int, typer.Option(help="Seeds added per round to each open arm.")]
SettlePlan = Annotated[bool, typer.Option(
    "--plan", help="Show the rounds and what each would cost; train nothing.")]  # fmt: skip
Slots = Annotated[int | None, typer.Option(help="Runs at once, for --plan's wall time.")]
SeedsFor = Annotated[
    float | None,
    typer.Option(
        "--seeds-for",
        metavar="EFFECT",
        help=f"Size each experiment for a difference of EFFECT percentage points of final "
        f"{HEADLINE.label} from its base case: the seeds per arm that detect it with 80% power "
        "(from the spread of the results under --results; the base case must have some), and "
        "their cost.",
    ),
]


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def config_option(name: str) -> inspect.Parameter:
    """One RunConfig field as an option: its description, allowed values and default; None when
    not given, so that RunConfig resolves it (LeNet-5 options of an fc run stay unset)."""
    info = RunConfig.model_fields[name]
    kind = value_type(name)
    default = format_value(getattr(RunConfig(), name))
    text = f"{info.description} Allowed: {allowed_values(name)}. Default: {default}."
    declared = [f"{flag(name)}/--no-{flag(name)[2:]}"] if kind is bool else []
    option = typer.Option(*declared, help=text.replace("`", ""), show_default=False)
    cli_type = str if kind is tuple else kind  # a tuple is typed as c1,c2,c3
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[cli_type | None, option],
    )


def parse_option(name: str, value: Any) -> Any:
    """A command-line value as the field takes it: 'c1,c2,c3' -> (c1, c2, c3)."""
    if value_type(name) is not tuple:
        return value
    annotation = RunConfig.model_fields[name].annotation
    size = max(len(get_args(a)) for a in get_args(annotation) if get_origin(a) is tuple)
    try:
        parsed = tuple(int(part) for part in value.replace(" ", "").split(","))
    except ValueError:
        parsed = ()
    if len(parsed) != size:
        raise ConfigError([f"{flag(name)}: {value!r} is not allowed: need {allowed_values(name)}"])
    return parsed


def with_config_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """`command(cfg, **rest)` as a command with one option per RunConfig field, then `rest`'s;
    the options given make `cfg`, and a bad one is an error that names it (`--batch-size`)."""
    rest = list(inspect.signature(command, eval_str=True).parameters.values())[1:]
    rest = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in rest]

    @functools.wraps(command)
    def wrapper(**values: Any) -> Any:
        given = {name: values.pop(name) for name in CONFIG_FIELDS}
        options = {k: parse_option(k, v) for k, v in given.items() if v is not None}
        return command(make_config(options, where=flag), **values)

    _set_signature(wrapper, [*map(config_option, CONFIG_FIELDS), *rest])
    return wrapper


def defaults_from(source: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command's options the defaults `source` (its fmnist_ray.api function) declares
    for the same names, so the CLI and the Python API share one declaration of each."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        declared = inspect.signature(source).parameters
        parameters = [
            p.replace(default=declared[p.name].default)
            if p.name in declared and declared[p.name].default is not p.empty
            else p
            for p in inspect.signature(command, eval_str=True).parameters.values()
        ]
        _set_signature(command, parameters)
        return command

    return decorate


def lend_options(source: Callable[..., Any], keep: Callable[[str], bool]):
    """Give a command every option of `source` (as declared there) that `keep(name)` accepts
    and the command does not declare itself; it receives them as `lent={name: value}`."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        own = inspect.signature(command, eval_str=True).parameters
        lent = [
            p
            for p in inspect.signature(source, eval_str=True).parameters.values()
            if p.default is not p.empty and p.name not in own and keep(p.name)
        ]

        @functools.wraps(command)
        def wrapper(**values: Any) -> Any:
            given = {p.name: values.pop(p.name) for p in lent}
            return command(**values, lent=given)

        _set_signature(wrapper, [p for p in own.values() if p.name != "lent"] + lent)
        return wrapper

    return decorate


def _set_signature(function: Callable[..., Any], parameters: list[inspect.Parameter]) -> None:
    """What Typer reads: `inspect.signature` and the type hints."""
    function.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    function.__annotations__ = {p.name: p.annotation for p in parameters}


def as_arguments(command: Any, values: dict[str, Any]) -> list[str]:
    """`values` (by parameter name) as the argv that gives them to the click `command`, spelled
    by its own declarations: `--retries 2`, `--force`/`--no-force`; None is left out."""
    arguments: list[str] = []
    for param in command.params:
        value = values.get(param.name)
        if value is None or param.param_type_name != "option":
            continue
        if getattr(param, "is_flag", False) and param.secondary_opts:
            arguments.append(param.opts[0] if value else param.secondary_opts[0])
        elif not getattr(param, "is_flag", False):
            arguments += [param.opts[0], str(value)]
    return arguments
