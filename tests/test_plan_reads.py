"""`plan` opens only the run files whose ids it needs (and every file of its own folders, whose
invalid files it quarantines): a root with many unrelated valid files costs it a listing, not a
read of each (counted through the latency proxy in front of a real S3 server)."""

from pathlib import Path

from test_tree_reads import committed_runs, fill

from fmnist_ray.planning.plan import make_plan
from fmnist_ray.spec.grid import load_experiment
from fmnist_ray.store.storage import locate

REPO = Path(__file__).resolve().parents[1]


def test_plan_reads_only_the_files_of_the_runs_it_plans(slow_s3, tmp_path):
    proxy, uri = slow_s3
    root = locate(uri)
    fill(root / "others", committed_runs(150))  # 150 unrelated files and an invalid one
    mine = sorted((REPO / "results" / "pooling" / "runs").glob("*.parquet"))
    for path in mine:
        (root / "pooling" / "runs" / path.name).write_bytes(path.read_bytes())
    (root / "pooling" / "runs" / "0123456789ab.parquet").write_bytes(b"torn")
    experiment = load_experiment(REPO / "experiments" / "study" / "pooling.toml")
    # the folder also holds runs `settle` added (more seeds): not in the grid, so not needed
    wanted = {run.run_id for run in make_plan([experiment], locate(str(tmp_path))).runs}
    assert len(wanted & {p.stem for p in mine}) == len(wanted)

    proxy.reset()
    plan = make_plan([experiment], root)
    gets = proxy.requests["GET"] + proxy.requests["HEAD"]
    print(f"plan of {len(mine)} runs in a root of {150 + len(mine) + 2} files: {gets} GET/HEAD")
    assert {run.run_id for run in plan.runs if run.source} == wanted
    assert [path.name for path, _ in plan.corrupt] == ["0123456789ab.parquet"]
    assert gets <= 2 * (len(mine) + 1) + 20  # its files and listings, not the 151 others
