"""The `fmnist-ray` command line: train, plan, run, settle, submit, report, export. Commands stay
thin: plan, run, settle and report call the Python API (fmnist_ray.api), whose signatures give
their defaults; heavy imports (torch, ray, matplotlib) happen inside them so `--help` is instant.
User mistakes are one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .. import api
from ..errors import FmnistRayError
from ..exporting.command import export
from ..runner.cluster import DEFAULT_DASHBOARD
from ..spec.config import RunConfig
from .options import (
    Alpha,
    CpusPerRun,
    DataDir,
    Download,
    Effect,
    ExperimentPaths,
    Force,
    GpusPerRun,
    MaxSeeds,
    NumCpus,
    NumGpus,
    Power,
    RayAddress,
    ResultsDir,
    Retries,
    SeedsFor,
    SettleEffect,
    SettlePlan,
    Slots,
    Step,
    as_arguments,
    defaults_from,
    lend_options,
    with_config_options,
)

try:  # recent typer versions vendor click as typer._click; older ones use click itself
    from typer._click.exceptions import ClickException, UsageError
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException, UsageError

app = typer.Typer(
    help="Ablation studies of Fashion-MNIST classifiers, trained in parallel on Ray.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
USAGE_ERROR = 2


def fail(problems: list[str], code: int = USAGE_ERROR) -> None:
    for line in problems:
        typer.echo(f"error: {line}", err=True)
    raise typer.Exit(code)


def user_errors(command):
    """Turn the project's user-facing errors into `error: ...` lines and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except FmnistRayError as error:
            fail(error.lines)

    return wrapper


@app.command()
@user_errors
@with_config_options
def train(
    cfg: RunConfig,
    data_dir: DataDir = None,
    results: ResultsDir = api.DEFAULT_RESULTS,
    device: Annotated[
        str | None, typer.Option(help="cpu, cuda or cuda:N (default: cuda if available).")
    ] = None,
    threads: Annotated[int | None, typer.Option(help="Torch CPU threads.")] = None,
    download: Download = True,
) -> None:
    """Train one configuration and write its per-epoch history as a Parquet file. The options
    before --data-dir are the run's (docs/study.md); unset ones take the study's base case."""
    _train_and_write(cfg, data_dir, results, device, threads, download)


def _train_and_write(cfg, data_dir, results: str, device, threads, download: bool) -> None:
    """The body of `train`: one run in this process, its history written under TRAIN_DIR."""
    import torch

    from ..spec.metrics import FIT, HEADLINE, SECONDS, epoch_line
    from ..store.results import (
        TRAIN_DIR,
        git_commit,
        history_table,
        now_iso,
        run_metadata,
        write_run,
    )
    from ..training.data import load_fashion_mnist
    from ..training.models import build_model, count_parameters
    from ..training.train import pick_device, train_run

    if threads is not None:
        torch.set_num_threads(max(1, threads))
    if device is not None and not _device_ok(device):
        fail([f"--device: {device!r} is not allowed: use cpu, cuda or cuda:N (available here: "
              f"cpu{', cuda' if torch.cuda.is_available() else ''})"])  # fmt: skip
    data = load_fashion_mnist(data_dir, download=download)
    target = pick_device(device)
    typer.echo(
        f"run {cfg.run_id}: {cfg.describe()}\n"
        f"{count_parameters(build_model(cfg)):,} parameters on {target}, "
        f"{torch.get_num_threads()} CPU threads; data from {data.source}"
    )
    started_at = now_iso()
    result = train_run(
        cfg, data, target, on_epoch=lambda row: typer.echo(epoch_line(row, cfg.epochs))
    )
    metadata = run_metadata(result.metadata, started_at, git_commit())
    table = history_table(cfg, result.history, result.status, TRAIN_DIR, metadata)
    path = write_run(f"{results.rstrip('/')}/{TRAIN_DIR}", table)
    final = result.final
    seconds = sum(row[SECONDS.name] for row in result.history)
    verdict = "done" if result.status == "ok" else f"{result.status.upper()} (loss not finite)"
    typer.echo(
        f"{verdict}: {HEADLINE.label} {final[HEADLINE.name]:.4f}, {FIT.label} "
        f"{final[FIT.name]:.4f} after {len(result.history)} epochs in {seconds:.1f}s -> {path}"
    )
    if result.status != "ok":
        raise typer.Exit(1)


def _device_ok(device: str) -> bool:
    import torch

    try:
        parsed = torch.device(device)
    except RuntimeError:
        return False
    if parsed.type == "cuda":
        return torch.cuda.is_available() and (parsed.index or 0) < torch.cuda.device_count()
    return parsed.type == "cpu"


@app.command()
@user_errors
@defaults_from(api.plan)
def plan(
    experiments: ExperimentPaths,
    results: ResultsDir,
    slots: Annotated[
        int | None,
        typer.Option(
            help="Runs at once, for the wall-time estimate. Default: CPUs here / CPUs per run."
        ),
    ],
    runs: Annotated[
        bool | None, typer.Option("--runs/--no-runs", help="List every run (default: one file).")
    ],
    seeds_for: SeedsFor,
) -> None:
    """Show the runs experiment files expand to, which are done, and what they will cost; with
    --seeds-for, how many seeds per arm a difference needs and what they would cost."""
    shown = api.plan(experiments, results=results, slots=slots, runs=runs, seeds_for=seeds_for)
    typer.echo(shown.text)


@app.command()
@user_errors
@defaults_from(api.run)
def run(
    experiments: ExperimentPaths,
    address: RayAddress,
    gpus_per_run: GpusPerRun,
    cpus_per_run: CpusPerRun,
    results: ResultsDir,
    data_dir: DataDir,
    force: Force,
    num_cpus: NumCpus,
    num_gpus: NumGpus,
    download: Download,
    retries: Retries,
) -> None:
    """Train every run of the experiment files in parallel on Ray, longest first. A run whose
    result exists anywhere under the results root is filed, not trained again."""
    options = dict(address=address, gpus_per_run=gpus_per_run, cpus_per_run=cpus_per_run,
                   results=results, data_dir=data_dir, force=force, num_cpus=num_cpus,
                   num_gpus=num_gpus, download=download, retries=retries)  # fmt: skip
    try:
        outcome = api.run(experiments, **options)
    except api.GridInterrupted as interrupted:  # finished runs kept, the summary printed
        outcome = interrupted.outcome
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


@app.command()
@user_errors
@defaults_from(api.settle)
def settle(
    experiments: ExperimentPaths,
    results: ResultsDir,
    effect: SettleEffect,
    alpha: Alpha,
    power: Power,
    max_seeds: MaxSeeds,
    step: Step,
    plan: SettlePlan,
    slots: Slots,
    data_dir: DataDir,
    num_cpus: NumCpus,
    address: RayAddress,
    download: Download,
    retries: Retries,
) -> None:
    """Add seeds in rounds where an arm's comparison with its base case is still open, until
    each is decided by a sequential test that keeps false positives at --alpha over all rounds:
    a difference found, smaller than --effect, or --max-seeds reached. Ctrl-C keeps what
    finished; the same command resumes."""
    options = dict(results=results, effect=effect, alpha=alpha, power=power,
                   max_seeds=max_seeds, step=step, plan=plan, slots=slots, data_dir=data_dir,
                   num_cpus=num_cpus, address=address, download=download,
                   retries=retries)  # fmt: skip
    try:
        settled = api.settle(experiments, **options)
    except api.GridInterrupted:  # finished runs kept; the summary printed
        typer.echo("interrupted: the same command resumes from the runs kept", err=True)
        raise typer.Exit(130) from None
    if plan:
        typer.echo(settled.text)


LOCAL_ONLY = ("address", "num_cpus", "num_gpus")  # `run` options about the Ray it starts here


@app.command()
@user_errors
@lend_options(run, keep=lambda name: name not in LOCAL_ONLY)
def submit(
    experiments: ExperimentPaths,
    results: Annotated[
        str,
        typer.Option(
            "--results",
            help="Where the job writes: a URI (s3://bucket/prefix, gs://...) or an absolute "
            "path on storage the cluster shares.",
        ),
    ],
    address: Annotated[
        str,
        typer.Option(
            envvar="RAY_API_SERVER_ADDRESS",
            help="The cluster's dashboard (Ray Jobs API), e.g. http://HEAD:8265.",
        ),
    ] = DEFAULT_DASHBOARD,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Follow the job's logs until it ends.")
    ] = True,
    lent: dict[str, Any] | None = None,
) -> None:
    """Send the same `run` to a Ray cluster as a Ray Job; Ctrl-C detaches, the job keeps going.
    The other options are `run`'s, passed on to it (paths such as --data-dir: the head node's)."""
    from ..runner.cluster import use_token_auth
    from ..runner.submit import check_results
    from ..spec.grid import load_experiments

    exps = load_experiments(experiments)  # every file checked here, before anything is sent
    check_results(results)
    run_command = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
    options = as_arguments(run_command, {"results": results} | (lent or {}))
    use_token_auth()
    from ..runner.submit import submit as submit_job

    code = submit_job(address, exps, options, wait=wait)
    if code:
        raise typer.Exit(code)


@app.command()
@user_errors
@defaults_from(api.report)
def report(
    paths: Annotated[
        list[str],
        typer.Argument(
            help="Experiment result folders, or a whole results root (a folder or a URI such as "
            "s3://bucket/prefix)."
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            help="Output folder (default: report/ inside the folder given, inside their common "
            "parent for several, ./report for object storage)."
        ),
    ],
    reference: Annotated[
        Path | None,
        typer.Option(
            help="CSV of published values to check (experiment, arm, metric, value, note), "
            "e.g. study_reference.csv."
        ),
    ],
    effect: Effect,
) -> None:
    """Plots and summary tables: means and 95% CIs over seeds, each arm tested against the base
    case (paired or Welch t-test, Holm-adjusted), other analyses beside it, what the seeds can
    detect, optional checks against published values."""
    result = api.report(paths, out=out, reference=reference, effect=effect)
    for note in result.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"report written to {result.out_dir} (start with {result.index_path})")


app.command()(user_errors(export))  # its options and output live in fmnist_ray/exporting/command.py


def main() -> None:
    """Console entry point: click usage errors become one `error:` line with exit code 2."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=sys.argv[1:], prog_name="fmnist-ray", standalone_mode=False)
    except UsageError as error:
        hint = f" (see '{error.ctx.command_path} --help')" if error.ctx else ""
        typer.echo(f"error: {error.format_message()}{hint}", err=True)
        sys.exit(USAGE_ERROR)
    except typer.Abort:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except ClickException as error:
        typer.echo(f"error: {error.format_message()}", err=True)
        sys.exit(error.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
