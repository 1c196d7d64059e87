"""How long a run takes, estimated from its config: the work per image (multiply-adds of the
model), the per-step overhead (small batches mean many steps), and the test pass each epoch.
Used to submit the longest runs first and to predict a grid's wall time; never part of a result."""

from __future__ import annotations

from ..spec.config import RunConfig

TRAIN_IMAGES = 60_000
TEST_IMAGES = 10_000

# Seconds on one CPU thread, fitted by `python benchmarks/calibrate_cost.py --data-dir DIR`
# (non-negative least squares over 6 configs: base LeNet-5 at batch 10, 100 and 1280, the wide
# combined model, batch norm, and fc; one epoch each on 12,000 images, torch 2.14, 2-core VM).
# Convolutions cost more per multiply-add than dense layers; elementwise work (activations,
# pooling, batch norm) scales with the hidden values an image produces.
SECONDS_PER_CONV_MAC = 4.84e-11  # per forward multiply-add of one image, trained (fwd + bwd + step)
SECONDS_PER_LINEAR_MAC = 2.55e-11
SECONDS_PER_HIDDEN_VALUE = 6.88e-09  # per hidden value of one image, trained
SECONDS_PER_STEP = 1.43e-03  # per optimizer step: zero_grad, the update, per-call overheads
SECONDS_PER_TEST_MAC = 1.13e-10  # per forward multiply-add (conv + linear) of one test image


def work_per_image(cfg: RunConfig) -> tuple[int, int, int]:
    """One image's forward pass: (conv multiply-adds, linear multiply-adds, hidden values);
    batch norm counts its layers' values twice."""
    if cfg.model == "fc":
        return 0, 784 * 512 + 512 * 10, 784 + 2 * 512
    c1, c2, c3 = cfg.channels  # a lenet5 config always has them
    conv = c1 * 1 * 25 * 28 * 28 + c2 * c1 * 25 * 10 * 10 + c3 * c2 * 25
    conv_values = c1 * 28 * 28 + c2 * 10 * 10 + c3
    values = conv_values * (3 if cfg.batchnorm else 2) + c1 * 14 * 14 + c2 * 5 * 5 + 2 * 84
    return conv, c3 * 84 + 84 * 10, values


def estimate_seconds(cfg: RunConfig) -> float:
    """Estimated wall seconds of the whole run on one CPU thread of this project's CI machine."""
    conv, linear, values = work_per_image(cfg)
    steps = -(-TRAIN_IMAGES // cfg.batch_size)
    per_image = (
        SECONDS_PER_CONV_MAC * conv
        + SECONDS_PER_LINEAR_MAC * linear
        + SECONDS_PER_HIDDEN_VALUE * values
    )
    epoch = (
        TRAIN_IMAGES * per_image
        + steps * SECONDS_PER_STEP
        + TEST_IMAGES * SECONDS_PER_TEST_MAC * (conv + linear)
    )
    return cfg.epochs * epoch


def makespan(durations: list[float], slots: int) -> float:
    """Wall time of running `durations` in the given order on `slots` parallel slots, each job
    starting on the first slot that frees up (what Ray does with a queue of equal tasks)."""
    free_at = [0.0] * max(1, slots)
    for duration in durations:
        soonest = min(range(len(free_at)), key=free_at.__getitem__)
        free_at[soonest] += duration
    return max(free_at)


def lower_bound(durations: list[float], slots: int) -> float:
    """No order can beat max(total work / slots, longest run)."""
    return max(sum(durations) / max(1, slots), max(durations, default=0.0))


def most_at_once(spans) -> int:
    """The largest number of (start, end) spans that overlap at one instant."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak
