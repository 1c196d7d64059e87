"""The one vocabulary of per-epoch metrics: each metric's name (the Parquet column and the key
of a history row), its label in words, its unit as shown, and how it is formatted. The training
loop, the Parquet schema, the CLI's epoch line and the report all read it from here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["loss", "accuracy", "rate", "time", "speed"]
EPOCH = "epoch"  # the row's index column: 1..epochs


@dataclass(frozen=True)
class Metric:
    """One per-epoch value. Accuracies are stored as fractions and shown in percent."""

    name: str
    label: str  # in words, for figure titles, axes and sentences
    kind: Kind
    console: str  # the CLI's epoch line, a str.format pattern of the stored value
    note: str = ""  # how it is measured, added to a figure's axis label

    @property
    def scale(self) -> float:
        """Shown value = stored value * scale (accuracy in percent)."""
        return 100.0 if self.kind == "accuracy" else 1.0

    @property
    def unit(self) -> str:
        """The unit of the shown value ('' for a loss)."""
        return {"accuracy": "%", "time": "s", "speed": "images/s"}.get(self.kind, "")

    @property
    def spec(self) -> str:
        """Format of a shown value in tables: accuracy in % to 2 decimals, losses to 4, other
        values to 4 significant digits."""
        return {"accuracy": ".2f", "loss": ".4f"}.get(self.kind, ".4g")

    def show(self, value: float) -> str:
        """The value as the CLI's epoch line writes it."""
        return self.console.format(value)


METRICS: tuple[Metric, ...] = (
    Metric("train_loss", "training loss", "loss", "train_loss {:.4f}",
           note="mean over the epoch's batches"),
    Metric("train_acc", "training accuracy", "accuracy", "train_acc {:.4f}"),
    Metric("test_loss", "test loss", "loss", "test_loss {:.4f}"),
    Metric("test_acc", "test accuracy", "accuracy", "test_acc {:.4f}"),
    Metric("last_lr", "learning rate after the last step", "rate", "lr {:.3g}"),
    Metric("seconds", "seconds per epoch", "time", "{:.1f}s"),
    Metric("images_per_s", "training images/s", "speed", "{:,.0f} img/s"),
)  # fmt: skip
BY_NAME: dict[str, Metric] = {metric.name: metric for metric in METRICS}
NAMES: tuple[str, ...] = tuple(BY_NAME)

# The roles the report and the summaries give metrics: arms are compared on HEADLINE's final
# value, FIT is the final fit shown beside it, a non-finite value of a LOSSES metric is
# divergence, and SECONDS sums to a run's duration.
HEADLINE = BY_NAME["test_acc"]
FIT = BY_NAME["train_loss"]
LOSSES: tuple[Metric, ...] = tuple(m for m in METRICS if m.kind == "loss")
SECONDS = BY_NAME["seconds"]
# A difference in HEADLINE worth detecting (0.5 percentage points of test accuracy): what the
# report's and `plan --seeds-for`'s seeds-needed estimates are for unless told otherwise.
DEFAULT_EFFECT = 0.005
# The same in the unit the tables show and `--effect`/`--seeds-for` take (percentage points).
EFFECT_SCALE = HEADLINE.scale  # shown value = stored value * this
DEFAULT_SHOWN_EFFECT = DEFAULT_EFFECT * EFFECT_SCALE


def metric(name: str) -> Metric:
    """The metric called `name`; KeyError naming the known ones otherwise."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(NAMES)}") from None


def epoch_line(row: dict[str, float], epochs: int) -> str:
    """'epoch   3/20  train_loss 0.4012  ...  1.2s  48,211 img/s': one row of a history."""
    values = "  ".join(m.show(row[m.name]) for m in METRICS)
    return f"{EPOCH} {row[EPOCH]:>3}/{epochs}  {values}"
