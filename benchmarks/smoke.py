"""Every benchmark's `--smoke` mode (tiny sizes; checks the code, its numbers mean nothing), each
in its own process with a timeout; gpu_check.sh as a dry run. One line per benchmark with its wall
time and OK/FAILED; exit 1 if any failed. CI (.ci/run) runs it before the tests.

    python benchmarks/smoke.py [--data-dir DIR] [--timeout 180] [NAME ...]
"""

from __future__ import annotations

import argparse
import os
import runpy
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# name -> whether it takes --data-dir; each runs as `python benchmarks/NAME.py --smoke ...`.
BENCHMARKS = {
    "bench_accuracy": True,
    "bench_gpu_packing": True,
    "bench_gpu_step": True,
    "bench_grid": True,
    "bench_order": True,
    "bench_sequential": False,
    "bench_sequential_variants": False,
    "bench_store": False,
    "bench_scale": False,
    "bench_throughput": True,
    "calibrate_cost": True,
    "compare_devices": False,
    "gpu_grid": True,
    "gpu_memory": True,
    "gpu_streams": True,
    "study_cost": False,
    "verify_report": False,
}
GPU_CHECK = "gpu_check.sh"


def run_one(command: list[str], timeout: float, env: dict) -> tuple[bool, str]:
    """Run a command in its own process group; on timeout stop the whole group (Ray included)."""
    with tempfile.TemporaryFile("w+") as log:
        child = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)  # fmt: skip
        try:
            ok = child.wait(timeout=timeout) == 0
        except subprocess.TimeoutExpired:
            stop_group(child)
            ok = False
            print(f"timed out after {timeout:.0f} s", file=log)
        log.seek(0)
        return ok, log.read()


def stop_group(child: subprocess.Popen) -> None:
    """SIGTERM the child's process group (Ray shuts down on it), then SIGKILL what is left."""
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            return
        try:
            child.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def gpu_check_commands(data_dir: str, shims: Path, work: Path) -> list[list[str]]:
    """`bash -n`, then the script itself with `python3` and `nvidia-smi` replaced by shims: each
    python command it calls is parsed with its flags (`--parse-only` below), nothing trains."""
    script = str(HERE / GPU_CHECK)
    (shims / "python3").write_text(
        f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).resolve()}" --parse-only "$@"\n'
    )
    (shims / "nvidia-smi").write_text('#!/bin/sh\necho "nvidia-smi $*: not called (dry run)"\n')
    for shim in shims.iterdir():
        shim.chmod(0o755)
    return [["bash", "-n", script], ["bash", script, data_dir, str(work)]]


def smoke_all(names: list[str], data_dir: str, timeout: float) -> int:
    env = os.environ | {"RAY_USAGE_STATS_ENABLED": "0", "FMNIST_DATA_DIR": data_dir}
    env.pop("RAY_ADDRESS", None)  # each benchmark starts its own local Ray
    failed, total = [], time.perf_counter()
    for name in names:
        start = time.perf_counter()
        # Under /tmp as Ray's own default is: its socket paths must stay short.
        with tempfile.TemporaryDirectory(dir="/tmp" if os.path.isdir("/tmp") else None) as tmp:
            env["RAY_TMPDIR"] = tmp  # Ray's session files go with the temporary folder
            if name == GPU_CHECK:
                (shims := Path(tmp) / "bin").mkdir()
                commands = gpu_check_commands(data_dir, shims, Path(tmp))
                run_env = env | {"PATH": f"{shims}{os.pathsep}{env.get('PATH', '')}"}
            else:
                extra = ["--data-dir", data_dir] if BENCHMARKS[name] else []
                commands = [[sys.executable, str(HERE / f"{name}.py"), "--smoke", *extra]]
                run_env = env
            ok, output = True, ""
            for command in commands:
                ok, output = run_one(command, timeout, run_env)
                if not ok:
                    break
        print(f"{name:20s} {time.perf_counter() - start:6.1f} s  {'OK' if ok else 'FAILED'}",
              flush=True)  # fmt: skip
        if not ok:
            failed.append(name)
            print("    " + "\n    ".join(output.rstrip().splitlines()[-40:]), flush=True)
    print(f"{'total':20s} {time.perf_counter() - total:6.1f} s  "
          + (f"FAILED: {', '.join(failed)}" if failed else "all OK"))  # fmt: skip
    return 1 if failed else 0


class _Parsed(Exception):
    """Raised by the patched `parse_args` once a benchmark's flags have parsed."""


def parse_only(argv: list[str]) -> None:
    """gpu_check.sh's dry run: check one `python3 ...` command it calls without running it."""
    if argv[:1] == ["-c"]:
        compile(argv[1], "<python3 -c>", "exec")
    elif argv[:2] == ["-m", "pytest"]:
        import pytest

        raise SystemExit(pytest.main(["--collect-only", "-q", *argv[2:]]))
    elif argv[:2] == ["-m", "fmnist_ray"]:
        parse_cli(argv[2:])
    elif argv and argv[0].endswith(".py"):
        parse_script(argv[0], argv[1:])
    else:
        raise SystemExit(f"dry run: no check for `python3 {' '.join(argv)}`")
    print(f"python3 {' '.join(argv)}: parsed (dry run)")


def parse_script(path: str, args: list[str]) -> None:
    """Import a benchmark and parse `args` with its own argparse parser; stop right after."""
    import argparse as module

    parse = module.ArgumentParser.parse_args

    def parse_then_stop(self, *a, **k):
        parse(self, *a, **k)
        raise _Parsed

    module.ArgumentParser.parse_args = parse_then_stop
    sys.argv = [path, *args]
    sys.path.insert(0, str(Path(path).resolve().parent))
    try:
        runpy.run_path(path, run_name="__main__")
    except _Parsed:
        return
    raise SystemExit(f"{path} did not parse its arguments")


def parse_cli(args: list[str]) -> None:
    """Parse `fmnist-ray ARGS` with its real click command, the command's body replaced by a
    check that every path argument (experiment files) exists."""
    import typer

    from fmnist_ray.cli.commands import app

    group = typer.main.get_command(app)
    command = group.commands[args[0]]

    def check(**params) -> None:
        for param in command.params:
            values = params.get(param.name)
            paths = values if isinstance(values, list | tuple) else [values]
            missing = [p for p in paths if isinstance(p, Path) and not p.exists()]
            if param.param_type_name == "argument" and missing:
                raise SystemExit(f"no such file: {', '.join(map(str, missing))}")

    command.callback = check
    group.main(args=args, prog_name="fmnist-ray", standalone_mode=False)


def main() -> None:
    if sys.argv[1:2] == ["--parse-only"]:
        return parse_only(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--data-dir", default=os.environ.get("FMNIST_DATA_DIR"))
    parser.add_argument("--timeout", type=float, default=180, help="seconds per benchmark")
    args = parser.parse_args()
    known = [*BENCHMARKS, GPU_CHECK]
    if unknown := set(args.names) - set(known):
        parser.error(f"unknown: {', '.join(sorted(unknown))} (known: {', '.join(known)})")
    if not args.data_dir:
        parser.error("give --data-dir or set FMNIST_DATA_DIR")
    data_dir = str(Path(args.data_dir).resolve())
    sys.exit(smoke_all(args.names or known, data_dir, args.timeout))


if __name__ == "__main__":
    main()
