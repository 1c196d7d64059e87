"""Where runs trained, as read from their metadata: a device label per run (`cpu`, the GPU's
name, or `unknown` for files that lack it), the count of runs per device, and whether CPU and GPU
runs are mixed (their histories differ, so one experiment should not compare them)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

CPU = "cpu"
UNKNOWN = "unknown"  # metadata without a device: files written before it was recorded
# Why a mix matters, from benchmarks/RESULTS.md ("The study's experiments on the GPU vs the
# committed CPU results"), in its words.
MIXED_WHY = (
    "GPU and CPU histories are not bit-identical (different kernels; cuDNN's backward is not "
    "deterministic), so a run id's result depends on its device: the wide combined model differs "
    "by up to 1.4 pp per seed, which is its seed-to-seed spread (benchmarks/RESULTS.md). "
    "Differences between arms may be partly differences between devices; retrain the runs of "
    "one device (`fmnist-ray run --force` on the other) to compare like with like."
)


def device_label(meta: dict[str, Any]) -> str:
    """A run's device for people: `cpu`, the GPU's name (`device_name`, else `cuda`) and how it
    had the GPU (`packing`), or `unknown` when its metadata names no device."""
    device = str(meta.get("device") or "")
    if not device:
        return UNKNOWN
    kind = device.split(":")[0]
    if kind != "cuda":
        return kind
    return f"{meta.get('device_name') or kind}{packing(meta)}"


def packing(meta: dict[str, Any]) -> str:
    """How a GPU run had its GPU, so that packed and solo runs' seconds and images/s are read
    apart: ' (4 at once)', ' (alone)', ' (retried alone)'; '' where the metadata predates it."""
    if meta.get("retried_alone"):
        return " (retried alone)"
    most = meta.get("runs_on_gpu")
    if not most:
        return ""
    return " (alone)" if most == 1 else f" ({most} at once)"


def sharing(meta: dict[str, Any]) -> tuple[Any, ...]:
    """(runs that trained at once in the run's process, itself included; runs fused with it;
    its trainer's GPU share; the most runs on its GPU at once; retried alone), None where the
    metadata predates them."""
    keys = ("runs_at_once", "fused_with", "gpu_share", "runs_on_gpu", "retried_alone")
    return tuple(meta.get(key) for key in keys)


def kind(label: str) -> str:
    """`cpu`, `gpu` or `unknown`, from a device label."""
    return label if label in (CPU, UNKNOWN) else "gpu"


def describe_devices(labels: Iterable[str]) -> str:
    """'NVIDIA H200: 6 · cpu: 3': runs per device, most first ('-' when there are none)."""
    counts = Counter(labels)
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return " · ".join(f"{label}: {n}" for label, n in ordered) or "-"


def mixes_cpu_and_gpu(labels: Iterable[str]) -> bool:
    """Whether the runs include both CPU and GPU runs (unknown ones count as neither)."""
    return {CPU, "gpu"} <= {kind(label) for label in labels}


def mixed_warning(experiment: str, labels: Iterable[str]) -> str | None:
    """The warning for an experiment whose runs mix CPU and GPU runs, else None."""
    labels = list(labels)
    if not mixes_cpu_and_gpu(labels):
        return None
    return f"{experiment}: its arms mix CPU and GPU runs ({describe_devices(labels)}). {MIXED_WHY}"
