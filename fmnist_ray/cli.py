"""The `fmnist-ray` command line: train, plan, run, report. Commands stay thin; heavy imports
(torch, ray, matplotlib) happen inside them so `--help` is instant. User mistakes are one line
on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import functools
import socket
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .config import CONFIG_FIELDS, ConfigError, RunConfig, allowed_values, make_config

app = typer.Typer(
    help="Ablation studies of Fashion-MNIST classifiers, trained in parallel on Ray.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
USAGE_ERROR = 2
# click's exception classes, wherever this typer version keeps click (recent ones vendor it).
ClickUsageError: type[Exception] = typer.BadParameter.__mro__[1]
ClickException: type[Exception] = typer.BadParameter.__mro__[2]


def fail(problems: list[str], code: int = USAGE_ERROR) -> None:
    for line in problems:
        typer.echo(f"error: {line}", err=True)
    raise typer.Exit(code)


def user_errors(command):
    """Turn the project's user-facing errors into `error: ...` lines and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from .data import DataError

        try:
            return command(*args, **kwargs)
        except ConfigError as error:
            fail(error.problems)
        except DataError as error:
            fail([str(error)])
        except _report_error() as error:
            fail([str(error)])

    return wrapper


def _report_error() -> type[Exception]:
    from .report import ReportError  # the package's light part: no matplotlib, no scipy

    return ReportError


def option_help(field: str, text: str) -> str:
    return f"{text} Allowed: {allowed_values(field)}."


DataDir = Annotated[
    Path | None,
    typer.Option(
        help="Folder with Fashion-MNIST (FashionMNIST/raw/...). Default: $FMNIST_DATA_DIR, "
        "else ~/.cache/fmnist-ray (downloaded there when missing)."
    ),
]
ResultsDir = Annotated[Path, typer.Option("--results", help="Where results are written.")]
Download = Annotated[
    bool, typer.Option("--download/--no-download", help="Download the data when it is missing.")
]


def parse_channels(text: str | None) -> tuple[int, int, int] | None:
    if text is None:
        return None
    try:
        values = tuple(int(part) for part in text.replace(" ", "").split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise ConfigError(
            [f"--channels: {text!r} is not allowed: need three integers like 32,64,256"]
        )
    return values  # type: ignore[return-value]


@app.command()
@user_errors
def train(
    model: Annotated[
        str | None, typer.Option(help=option_help("model", "Network (default lenet5)."))
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs (default 20).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size (default 100).")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate (default 0.001).")] = None,
    optimizer: Annotated[
        str | None, typer.Option(help=option_help("optimizer", "Optimizer (default adam)."))
    ] = None,
    momentum: Annotated[float | None, typer.Option(help="Momentum (sgd, rmsprop).")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="Weight decay (default 0).")] = None,
    loss: Annotated[
        str | None, typer.Option(help=option_help("loss", "Loss (default cross_entropy)."))
    ] = None,
    activation: Annotated[
        str | None, typer.Option(help=option_help("activation", "LeNet-5 activation."))
    ] = None,
    pooling: Annotated[
        str | None, typer.Option(help=option_help("pooling", "LeNet-5 pooling."))
    ] = None,
    batchnorm: Annotated[
        bool | None, typer.Option("--batchnorm/--no-batchnorm", help="LeNet-5 batch norm.")
    ] = None,
    dropout: Annotated[
        bool | None, typer.Option("--dropout/--no-dropout", help="LeNet-5 dropout (p=0.3).")
    ] = None,
    channels: Annotated[
        str | None, typer.Option(help="LeNet-5 conv channels c1,c2,c3 (default 6,16,120).")
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option(help=option_help("scheduler", "LR schedule, stepped every batch."))
    ] = None,
    step_size: Annotated[
        int | None, typer.Option(help="StepLR step size in optimizer steps (batches).")
    ] = None,
    gamma: Annotated[float | None, typer.Option(help="StepLR decay factor.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed (default 0).")] = None,
    data_dir: DataDir = None,
    results: ResultsDir = Path("results"),
    device: Annotated[
        str | None, typer.Option(help="cpu, cuda or cuda:N (default: cuda if available).")
    ] = None,
    threads: Annotated[int | None, typer.Option(help="Torch CPU threads.")] = None,
    download: Download = True,
) -> None:
    """Train one configuration and write its per-epoch history as a Parquet file."""
    given = dict(locals())  # the options above carry RunConfig's field names
    options = {name: given[name] for name in CONFIG_FIELDS if given.get(name) is not None}
    if "channels" in options:
        options["channels"] = parse_channels(options["channels"])
    cfg = make_config(options, where=lambda name: f"--{name.replace('_', '-')}")

    import torch

    from .data import load_fashion_mnist
    from .models import build_model, count_parameters
    from .results import git_commit, history_table, library_versions, now_iso, write_run
    from .train import pick_device, train_run

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
    outcome = train_run(cfg, data, target, on_epoch=lambda row: typer.echo(epoch_line(cfg, row)))
    metadata = {
        "started_at": started_at,
        "ended_at": now_iso(),
        "device": outcome.device,
        "torch_threads": torch.get_num_threads(),
        "git_commit": git_commit(),
        "versions": library_versions(),
        "host": socket.gethostname(),
    }
    table = history_table(cfg, outcome.history, outcome.status, "train", metadata)
    path = write_run(results / "train", table)
    final = outcome.final
    seconds = sum(row["seconds"] for row in outcome.history)
    verdict = "done" if outcome.status == "ok" else f"{outcome.status.upper()} (loss not finite)"
    typer.echo(
        f"{verdict}: test accuracy {final['test_acc']:.4f}, train loss {final['train_loss']:.4f} "
        f"after {final['epoch']} epochs in {seconds:.1f}s -> {path}"
    )
    if outcome.status != "ok":
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


def epoch_line(cfg: RunConfig, row: dict[str, Any]) -> str:
    return (
        f"epoch {row['epoch']:>3}/{cfg.epochs}  train_loss {row['train_loss']:.4f}  "
        f"train_acc {row['train_acc']:.4f}  test_loss {row['test_loss']:.4f}  "
        f"test_acc {row['test_acc']:.4f}  lr {row['last_lr']:.3g}  {row['seconds']:.1f}s  "
        f"{row['images_per_s']:,.0f} img/s"
    )


def format_table(header: list[str], rows: list[list[Any]]) -> str:
    """A plain fixed-width text table."""
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _value(cfg: RunConfig, name: str) -> str:
    value = getattr(cfg, name)
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


ExperimentPath = Annotated[Path, typer.Argument(help="Experiment file, e.g. experiments/lr.toml")]


@app.command()
@user_errors
def plan(experiment: ExperimentPath, results: ResultsDir = Path("results")) -> None:
    """Show the runs an experiment file expands to, which are done, and what it will cost."""
    from .grid import load_experiment
    from .results import done_run_ids, failure_path

    exp = load_experiment(experiment)
    folder = results / exp.name
    done = done_run_ids(folder)
    fields = [*exp.axes, "seed"]
    rows, counts = [], {"done": 0, "failed": 0, "pending": 0}
    for cfg in exp.runs:
        status = (
            "done"
            if cfg.run_id in done
            else "failed"
            if failure_path(folder, cfg.run_id).exists()
            else "pending"
        )
        counts[status] += 1
        rows.append([cfg.run_id, *(_value(cfg, f) for f in fields), status])
    images = sum(cfg.epochs * 60_000 for cfg in exp.runs)
    pending_images = sum(cfg.epochs * 60_000 for cfg in exp.runs if cfg.run_id not in done)
    gpus = exp.resources.gpus
    gpu_text = f"{gpus:g}" if gpus is not None else "auto (0.25 when the cluster has GPUs, else 0)"
    typer.echo(f"{exp.name}: {exp.description}".rstrip(": "))
    typer.echo(
        f"{len(exp.runs)} runs: {counts['done']} done, {counts['pending']} pending, "
        f"{counts['failed']} failed; seeds {', '.join(map(str, exp.seeds))}; "
        f"varies: {', '.join(exp.axes) or 'nothing but the seed'}"
    )
    typer.echo(f"resources per run: {exp.resources.cpus:g} CPU, GPU {gpu_text}")
    typer.echo(
        f"cost: {images:,} training images in all ({len(exp.runs)} runs x epochs x 60,000), "
        f"{pending_images:,} still to train"
    )
    typer.echo(f"results: {folder}\n")
    typer.echo(format_table(["run_id", *fields, "status"], rows))


@app.command()
@user_errors
def run(
    experiment: ExperimentPath,
    address: Annotated[
        str | None,
        typer.Option(
            envvar="RAY_ADDRESS",
            help="Ray cluster to join (e.g. 10.0.0.5:6379 or auto). Default: a local Ray.",
        ),
    ] = None,
    gpus_per_run: Annotated[
        float | None,
        typer.Option(
            help="GPUs per run; fractions pack runs (0.25 = 4 per GPU). Default: "
            "the file's [resources], else 0.25 with GPUs, 0 without."
        ),  # fmt: skip
    ] = None,
    cpus_per_run: Annotated[
        float | None, typer.Option(help="CPUs per run (torch threads). Default: file, else 1.")
    ] = None,
    results: ResultsDir = Path("results"),
    data_dir: DataDir = None,
    force: Annotated[bool, typer.Option(help="Retrain runs that are already done.")] = False,
    num_cpus: Annotated[
        int | None, typer.Option(help="CPUs of the local Ray (default: all).")
    ] = None,
    num_gpus: Annotated[
        int | None, typer.Option(help="GPUs of the local Ray (default: detected).")
    ] = None,
    download: Download = True,
) -> None:
    """Train every run of an experiment file in parallel on Ray; finished runs are skipped."""
    from .config import Resources
    from .grid import load_experiment
    from .results import done_run_ids

    exp = load_experiment(experiment)
    overrides = {"gpus": gpus_per_run, "cpus": cpus_per_run}
    try:
        resources = Resources(
            **(exp.resources.model_dump() | {k: v for k, v in overrides.items() if v is not None})
        )
    except ValueError:
        fail([f"--gpus-per-run must be >= 0 and --cpus-per-run > 0 (got {gpus_per_run}, "
              f"{cpus_per_run})"])  # fmt: skip
    folder = results / exp.name
    pending = [c for c in exp.runs if force or c.run_id not in done_run_ids(folder)]
    if not pending:
        typer.echo(
            f"nothing to train: all {len(exp.runs)} runs of {exp.name} are done in {folder} "
            f"(--force retrains them)"
        )
        return

    from .data import load_fashion_mnist

    data = load_fashion_mnist(data_dir, download=download)  # fail before starting Ray
    from . import runner

    typer.echo(f"{exp.name}: {len(pending)} of {len(exp.runs)} runs to train -> {folder}")
    started_here = runner.connect(address, num_cpus=num_cpus, num_gpus=num_gpus)
    try:
        resolved = runner.resolve_resources(resources)
        cluster = runner.ray.cluster_resources()
        typer.echo(
            f"Ray: {cluster.get('CPU', 0):g} CPUs, {cluster.get('GPU', 0):g} GPUs; per run "
            f"{resolved.cpus:g} CPU, {resolved.gpus:g} GPU"
        )
        outcome = runner.run_grid(exp, results, data, resolved, force=force)
    finally:
        runner.shutdown(started_here)
    print_grid_summary(exp, outcome, folder)
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


def print_grid_summary(exp, outcome, folder: Path) -> None:
    fields = [*exp.axes, "seed"]
    rows = []
    for item in sorted(outcome.finished, key=lambda i: exp.runs.index(i["config"])):
        cfg, final = item["config"], item["final"]
        rows.append([cfg.run_id, *(_value(cfg, f) for f in fields), item["status"],
                     f"{final['test_acc']:.4f}", f"{item['seconds']:.0f}"])  # fmt: skip
    for item in outcome.failed:
        cfg = item["config"]
        rows.append([cfg.run_id, *(_value(cfg, f) for f in fields), "FAILED", "-", "-"])
    if rows:
        typer.echo("\n" + format_table(["run_id", *fields, "status", "test_acc", "seconds"], rows))
    typer.echo(
        f"\n{exp.name}: {len(outcome.finished)} trained, {outcome.skipped} already done, "
        f"{len(outcome.failed)} failed"
        + (f", {outcome.cancelled} cancelled" if outcome.cancelled else "")
        + f" -> {folder / 'runs'}"
    )
    for item in outcome.failed:
        typer.echo(f"failed: {item['config'].run_id}: {item['error']} (details: {item['path']})",
                   err=True)  # fmt: skip
    if outcome.interrupted:
        typer.echo("interrupted: finished runs are kept; run the same command to resume.", err=True)


@app.command()
@user_errors
def report(
    paths: Annotated[
        list[Path], typer.Argument(help="Experiment result folders, or a whole results/ folder.")
    ],
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default: report/ beside the results).")
    ] = None,
    reference: Annotated[
        Path | None,
        typer.Option(
            help="CSV of published values to check (experiment, arm, metric, value, note), "
            "e.g. study_reference.csv."
        ),
    ] = None,
) -> None:
    """Plots and summary tables: means and 95% CIs over seeds, each arm tested against the base
    case (paired or Welch t-test, Holm-adjusted), optional checks against published values."""
    from .report import make_report

    result = make_report(paths, out, reference=reference)
    for note in result.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"report written to {result.out_dir} (start with {result.index_path})")


def main() -> None:
    """Console entry point: click usage errors become one `error:` line with exit code 2."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=sys.argv[1:], prog_name="fmnist-ray", standalone_mode=False)
    except ClickUsageError as error:
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
