"""`fmnist-ray export`: the committed lenet_baseline runs (3 seeds x 20 epochs) into a real MLflow
tracking store (a SQLite file, read back with MlflowClient) and into TensorBoard event files
(read back with tensorboard's own reader); exporting again adds nothing, a changed file is
replaced, and a missing package or a user mistake is one `error:` line with exit code 2."""

import json
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import REPO, cli

from fmnist_ray.exporting import ExportError, export
from fmnist_ray.spec.metrics import NAMES
from fmnist_ray.store.results import METADATA_KEY, check_run, write_run

BASELINE = REPO / "results" / "lenet_baseline"
RUN_FILES = sorted((BASELINE / "runs").glob("*.parquet"))


def copy_baseline(root: Path) -> Path:
    """The committed runs under `root`/lenet_baseline (never edited in place)."""
    shutil.copytree(BASELINE, root / "lenet_baseline")
    return root


def metadata(path: Path) -> dict:
    return json.loads(pq.read_schema(path).metadata[METADATA_KEY])


def rewrite_ended_at(path: Path, ended_at: str) -> None:
    """The same run written again by the project's own writer, ending at another time: a
    valid file with the same run id and other bytes."""
    table = check_run(path)
    meta = metadata(path) | {"ended_at": ended_at}
    write_run(path.parent.parent, table.replace_schema_metadata({METADATA_KEY: json.dumps(meta)}))


def as_param(value) -> str:
    """How the config reads as MLflow params (the stored JSON config's values)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(map(str, value))
    return "none" if value is None else str(value)


def ms(moment: str) -> int:
    return int(datetime.fromisoformat(moment).timestamp() * 1000)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One SQLite tracking store for the module (creating one takes seconds), its folder, and
    lenet_baseline exported into it once (experiment fmnist-ray)."""
    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder}/mlflow.db"
    root = copy_baseline(folder / "results")
    counts = export(root, "mlflow", tracking_uri=uri)
    return uri, folder, counts


def active_runs(uri: str, experiment: str, view=None):
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id], run_view_type=view or ViewType.ACTIVE_ONLY)


def test_mlflow_holds_each_run_with_its_config_metrics_tags_and_file(store, tmp_path):
    from mlflow import MlflowClient

    uri, folder, counts = store
    assert (counts.exported, counts.updated, counts.unchanged, counts.skipped) == (3, 0, 0, [])
    client = MlflowClient(tracking_uri=uri)
    runs = {r.data.tags["fmnist_ray.run_id"]: r for r in active_runs(uri, "fmnist-ray")}
    assert sorted(runs) == [path.stem for path in RUN_FILES]
    for path in RUN_FILES:
        run, meta, table = runs[path.stem], metadata(path), pq.read_table(path)
        assert run.data.params == {k: as_param(v) for k, v in meta["config"].items()}
        assert run.data.tags["fmnist_ray.experiment"] == "lenet_baseline"
        for key in ("status", "device", "git_commit"):
            assert run.data.tags[f"fmnist_ray.{key}"] == meta[key]
        assert run.data.tags["mlflow.source.git.commit"] == meta["git_commit"]
        assert (run.info.status, run.info.start_time) == ("FINISHED", ms(meta["started_at"]))
        assert run.info.end_time == ms(meta["ended_at"])
        assert set(run.data.metrics) == set(NAMES)
        history = client.get_metric_history(run.info.run_id, "test_acc")
        assert [(m.step, m.value) for m in history] == list(
            enumerate(table.column("test_acc").to_pylist(), start=1)
        )
        assert len(history) == 20
        assert [a.path for a in client.list_artifacts(run.info.run_id)] == [path.name]
        got = client.download_artifacts(run.info.run_id, path.name, str(tmp_path))
        assert Path(got).read_bytes() == path.read_bytes()
        assert run.info.artifact_uri.startswith((folder / "mlartifacts").as_uri())


def test_mlflow_second_export_adds_nothing(store):
    from mlflow.entities import ViewType

    uri, folder, _ = store
    counts = export(folder / "results", "mlflow", tracking_uri=uri)
    assert (counts.exported, counts.updated, counts.unchanged) == (0, 0, 3)
    assert len(active_runs(uri, "fmnist-ray", ViewType.ALL)) == 3


def test_mlflow_run_whose_file_changed_or_export_was_cut_short_is_replaced(store, tmp_path):
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    uri, _, _ = store
    root = copy_baseline(tmp_path)
    export(root, "mlflow", tracking_uri=uri, experiment_name="changed")
    changed, cut_short = sorted((root / "lenet_baseline" / "runs").glob("*.parquet"))[:2]
    rewrite_ended_at(changed, "2030-01-02T03:04:05.678+00:00")
    before = {r.data.tags["fmnist_ray.run_id"]: r for r in active_runs(uri, "changed")}
    MlflowClient(tracking_uri=uri).delete_tag(
        before[cut_short.stem].info.run_id, "fmnist_ray.sha256"
    )
    counts = export(root, "mlflow", tracking_uri=uri, experiment_name="changed")
    assert (counts.exported, counts.updated, counts.unchanged) == (0, 2, 1)
    after = {r.data.tags["fmnist_ray.run_id"]: r for r in active_runs(uri, "changed")}
    assert sorted(after) == sorted(before)
    assert after[changed.stem].info.end_time == ms("2030-01-02T03:04:05.678+00:00")
    for stem in (changed.stem, cut_short.stem):
        assert after[stem].info.run_id != before[stem].info.run_id
    deleted = active_runs(uri, "changed", ViewType.DELETED_ONLY)
    assert sorted(r.info.run_id for r in deleted) == sorted(
        before[stem].info.run_id for stem in (changed.stem, cut_short.stem)
    )


def test_mlflow_from_object_storage(store, s3_uri, tmp_path):
    """A root on S3: the runs are read through pyarrow.fs and the artifact is the same bytes."""
    from mlflow import MlflowClient
    from pyarrow.fs import copy_files

    from fmnist_ray.store.storage import locate

    uri, _, _ = store
    target = locate(s3_uri) / "lenet_baseline"
    copy_files(str(BASELINE), target.path, destination_filesystem=target.fs)
    counts = export(s3_uri, "mlflow", tracking_uri=uri, experiment_name="from-s3")
    assert (counts.exported, counts.unchanged) == (3, 0)
    run = next(
        r
        for r in active_runs(uri, "from-s3")
        if r.data.tags["fmnist_ray.run_id"] == RUN_FILES[0].stem
    )
    assert run.data.tags["fmnist_ray.source"].startswith("s3://")
    got = MlflowClient(tracking_uri=uri).download_artifacts(
        run.info.run_id, RUN_FILES[0].name, str(tmp_path)
    )
    assert Path(got).read_bytes() == RUN_FILES[0].read_bytes()


def event_files(logdir: Path) -> dict[str, float]:
    return {str(p.relative_to(logdir)): p.stat().st_mtime for p in logdir.rglob("*tfevents*")}


def test_tensorboard_scalars_and_hparams_read_back(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import api_pb2
    from tensorboard.plugins.hparams import metadata as hp

    root, logdir = copy_baseline(tmp_path / "results"), tmp_path / "tb"
    done = cli("export", root, "--to", "tensorboard", "--logdir", logdir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{logdir}: 3 runs exported, 0 updated, 0 unchanged"
    groups = set()
    for path in RUN_FILES:
        events = EventAccumulator(
            str(logdir / "lenet_baseline" / path.stem), size_guidance={"scalars": 0, "tensors": 0}
        )
        events.Reload()
        assert set(events.Tags()["scalars"]) == set(NAMES)
        table = pq.read_table(path)
        for name in NAMES:
            points = [(e.step, e.value) for e in events.Scalars(name)]
            assert [step for step, _ in points] == list(range(1, 21))
            assert [v for _, v in points] == pytest.approx(table.column(name).to_pylist(), rel=1e-6)
        start = hp.parse_session_start_info_plugin_data(
            events.SummaryMetadata(hp.SESSION_START_INFO_TAG).plugin_data.content
        )
        config = metadata(path)["config"]
        assert start.hparams["experiment"].string_value == "lenet_baseline"
        assert start.hparams["lr"].number_value == config["lr"] == 0.001
        assert start.hparams["channels"].string_value == "6,16,120"
        assert start.hparams["batchnorm"].bool_value is False
        assert "seed" not in start.hparams
        assert "momentum" not in start.hparams  # None: no value
        groups.add(start.group_name)
        end = hp.parse_session_end_info_plugin_data(
            events.SummaryMetadata(hp.SESSION_END_INFO_TAG).plugin_data.content
        )
        assert end.status == api_pb2.STATUS_SUCCESS
    seed0 = next(p.stem for p in RUN_FILES if metadata(p)["config"]["seed"] == 0)
    assert groups == {f"lenet_baseline/{seed0}"}  # three seeds, one arm
    top = EventAccumulator(str(logdir), size_guidance={"tensors": 0})
    top.Reload()
    experiment = hp.parse_experiment_plugin_data(
        top.SummaryMetadata(hp.EXPERIMENT_TAG).plugin_data.content
    )
    assert [m.name.tag for m in experiment.metric_infos] == list(NAMES)
    hparams = {info.name: info for info in experiment.hparam_infos}
    assert "seed" not in hparams
    assert hparams["experiment"].type == api_pb2.DATA_TYPE_STRING
    assert list(hparams["activation"].domain_discrete) == ["tanh", "relu", "leaky_relu"]


def test_tensorboard_second_export_writes_nothing_and_a_changed_run_is_rewritten(tmp_path):
    root, logdir = copy_baseline(tmp_path / "results"), tmp_path / "tb"
    export(root, "tensorboard", logdir=logdir)
    first = event_files(logdir)
    assert len(first) == 4  # three runs and the HParams config
    counts = export(root, "tensorboard", logdir=logdir)
    assert (counts.exported, counts.updated, counts.unchanged) == (0, 0, 3)
    assert event_files(logdir) == first
    changed = root / "lenet_baseline" / "runs" / RUN_FILES[0].name
    rewrite_ended_at(changed, "2030-01-02T03:04:05.678+00:00")
    counts = export(root, "tensorboard", logdir=logdir)
    assert (counts.exported, counts.updated, counts.unchanged) == (0, 1, 2)
    now = event_files(logdir)
    assert len(now) == 4 and sorted(p for p in now if changed.stem not in p) == sorted(
        p for p in first if changed.stem not in p
    )
    assert [p for p in now if changed.stem in p] != [p for p in first if changed.stem in p]
    assert sorted(p.name for p in (logdir / "lenet_baseline").iterdir()) == sorted(
        p.stem for p in RUN_FILES
    )


def test_invalid_files_are_skipped_and_named(tmp_path):
    root, logdir = copy_baseline(tmp_path / "results"), tmp_path / "tb"
    broken = root / "lenet_baseline" / "runs" / "000000000000.parquet"
    broken.write_bytes(b"not parquet")
    counts = export(root, "tensorboard", logdir=logdir)
    assert counts.exported == 3
    assert [path for path, _ in counts.skipped] == [str(broken)]


@pytest.mark.parametrize(
    "target, extra",
    [("mlflow", ["--tracking-uri", "sqlite:///x.db"]), ("tensorboard", ["--logdir", "tb"])],
)
def test_missing_package_is_one_error_line(tmp_path, target, extra):
    """The package made unimportable for real: None in sys.modules makes `import` raise."""
    probe = (
        f"import sys; sys.modules[{target!r}] = None; from fmnist_ray.cli.commands import main; "
        f"sys.argv = ['fmnist-ray', 'export', {str(BASELINE)!r}, '--to', {target!r}, *{extra!r}]; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert (
        done.stderr
        == f"error: --to {target} needs the {target} package: pip install -e '.[{target}]' (or pip install {target})\n"
    )
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_user_mistake_is_one_error_line(tmp_path):
    done = cli("export", BASELINE, "--to", "wandb", cwd=tmp_path)
    message = "--to: 'wandb' is not allowed: use one of mlflow, tensorboard"
    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"error: {message}\n")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "root, options, message",
    [
        (BASELINE, {"to": "tensorboard"}, "--to tensorboard needs --logdir DIR"),
        (BASELINE, {"to": "mlflow", "logdir": "tb"}, "--logdir is for --to tensorboard"),
        (
            BASELINE,
            {"to": "tensorboard", "logdir": "tb", "tracking_uri": "x"},
            "--tracking-uri is for --to mlflow",
        ),
        ("nowhere", {"to": "tensorboard", "logdir": "tb"}, "nowhere: no such folder or file"),
        (REPO / "experiments", {"to": "tensorboard", "logdir": "tb"}, "no run files"),
    ],
)
def test_user_mistakes_are_export_errors(tmp_path, monkeypatch, root, options, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ExportError, match=message):
        export(root, **options)
    assert list(tmp_path.iterdir()) == []
