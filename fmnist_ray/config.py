"""What one training run is: `RunConfig` (every option of docs/study.md, validated, frozen), its
`run_id`, and the per-run `Resources` (never part of the id)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

ModelName = Literal["fc", "lenet5"]
Optimizer = Literal["adam", "sgd", "rmsprop"]
Loss = Literal["cross_entropy", "multi_margin", "mse"]
Activation = Literal["tanh", "relu", "leaky_relu"]
Pooling = Literal["avg", "max"]
Scheduler = Literal["none", "steplr"]

PositiveInt = Annotated[int, Field(strict=True, ge=1)]
PositiveFloat = Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)]

# Options that only LeNet-5 has, with the study's base-case values.
LENET_DEFAULTS: dict[str, Any] = {
    "activation": "tanh",
    "pooling": "avg",
    "batchnorm": False,
    "dropout": False,
    "channels": (6, 16, 120),
}
# Part of every run id. Bump it by hand whenever what a run computes changes (the training loop,
# a model, the data pipeline, a metric), so results of the old code are never reused as new ones.
# 1: the first versioned ids (divergence caught within DIVERGENCE_CHECK_STEPS of a non-finite loss).
TRAINING_VERSION = 1
MOMENTUM_OPTIMIZERS = ("sgd", "rmsprop")


class ConfigError(ValueError):
    """A user mistake in a run's options: each entry of `problems` is one readable line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class RunConfig(BaseModel):
    """One training run. Defaults are the study's base case (LeNet-5, 20 epochs, Adam 1e-3)."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    model: ModelName = "lenet5"
    epochs: PositiveInt = 20
    batch_size: PositiveInt = 100
    lr: PositiveFloat = 0.001
    optimizer: Optimizer = "adam"
    momentum: Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)] | None = Field(
        default=None, validate_default=True
    )
    weight_decay: Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)] = 0.0
    loss: Loss = "cross_entropy"
    # LeNet-5 only: None for `fc`, filled with the base case for `lenet5`.
    activation: Activation | None = Field(default=None, validate_default=True)
    pooling: Pooling | None = Field(default=None, validate_default=True)
    batchnorm: Annotated[bool, Field(strict=True)] | None = Field(
        default=None, validate_default=True
    )
    dropout: Annotated[bool, Field(strict=True)] | None = Field(default=None, validate_default=True)
    channels: tuple[PositiveInt, PositiveInt, PositiveInt] | None = Field(
        default=None, validate_default=True
    )
    scheduler: Scheduler = "none"
    # StepLR only; stepped after every batch, so step_size counts optimizer steps.
    step_size: PositiveInt | None = Field(default=None, validate_default=True)
    gamma: PositiveFloat | None = Field(default=None, validate_default=True)
    seed: Annotated[int, Field(strict=True, ge=0)] = 0

    @field_validator("channels", mode="before")
    @classmethod
    def _three_channels(cls, value: Any) -> Any:
        if value is not None and (not isinstance(value, list | tuple) or len(value) != 3):
            raise ValueError("need three channel counts (c1, c2, c3), each an integer >= 1")
        return value

    @field_validator("activation", "pooling", "batchnorm", "dropout", "channels")
    @classmethod
    def _lenet_only(cls, value: Any, info: ValidationInfo) -> Any:
        model = info.data.get("model")
        if model == "fc":
            if value is not None:
                raise ValueError("applies only to model 'lenet5' (this run has model 'fc')")
            return None
        return LENET_DEFAULTS[info.field_name] if value is None else value

    @field_validator("step_size", "gamma")
    @classmethod
    def _steplr_only(cls, value: Any, info: ValidationInfo) -> Any:
        scheduler = info.data.get("scheduler")
        if scheduler == "steplr" and value is None:
            raise ValueError("is required with scheduler 'steplr'")
        if scheduler == "none" and value is not None:
            raise ValueError("needs scheduler 'steplr' (this run has scheduler 'none')")
        return value

    @field_validator("momentum")
    @classmethod
    def _momentum_optimizers(cls, value: Any, info: ValidationInfo) -> Any:
        optimizer = info.data.get("optimizer")
        if value is not None and optimizer not in MOMENTUM_OPTIMIZERS and optimizer is not None:
            raise ValueError(
                f"applies only to optimizers {MOMENTUM_OPTIMIZERS} (not '{optimizer}')"
            )
        return value

    def canonical_json(self) -> str:
        """The resolved config as compact JSON with sorted keys: the input of `run_id`."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    @property
    def run_id(self) -> str:
        """First 12 hex of sha256 over TRAINING_VERSION and the canonical config: the same on
        every machine, and new whenever the training code's semantics change."""
        text = f"fmnist-ray/{TRAINING_VERSION}\n{self.canonical_json()}"
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def describe(self) -> str:
        """A short human label, e.g. 'lenet5 relu max bn ch=32,64,256 adam lr=0.001 seed=0'."""
        parts = [self.model]
        if self.model == "lenet5":
            parts += [str(self.activation), f"{self.pooling}pool"]
            parts += ["bn"] if self.batchnorm else []
            parts += ["dropout"] if self.dropout else []
            if self.channels != LENET_DEFAULTS["channels"]:
                parts.append("ch=" + ",".join(map(str, self.channels or ())))
        parts += [self.optimizer, f"lr={self.lr:g}", self.loss, f"bs={self.batch_size}"]
        if self.scheduler == "steplr":
            parts.append(f"steplr({self.step_size},{self.gamma:g})")
        parts.append(f"seed={self.seed}")
        return " ".join(parts)


DEFAULT_GPUS_PER_RUN = 0.25  # small models: four runs share one GPU unless told otherwise
DEFAULT_RETRIES = 2  # Ray's retries of a run whose worker or node died


class Resources(BaseModel):
    """What Ray reserves for each run. Not part of the run id: where a run ran never changes it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gpus: Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)] | None = None
    cpus: Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)] = 1.0


CONFIG_FIELDS: tuple[str, ...] = tuple(RunConfig.model_fields)


def format_value(value: Any) -> str:
    """One way to show a config value everywhere: 0.001, 6,16,120, true, none."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple | list):
        return ",".join(map(str, value))
    if isinstance(value, float):
        return f"{value:g}"
    return "none" if value is None else str(value)


def allowed_values(field: str) -> str:
    """What a field accepts, in words, for error messages and --help."""
    annotation = RunConfig.model_fields[field].annotation
    choices = [a for arg in get_args(annotation) for a in (get_args(arg) or [arg])]
    literals = [c for c in choices if isinstance(c, str)]
    if literals:
        return "one of " + ", ".join(repr(c) for c in literals)
    hints = {
        "epochs": "an integer >= 1",
        "batch_size": "an integer >= 1",
        "lr": "a number > 0",
        "momentum": "a number >= 0",
        "weight_decay": "a number >= 0",
        "batchnorm": "true or false",
        "dropout": "true or false",
        "channels": "three integers >= 1 (c1, c2, c3)",
        "step_size": "an integer >= 1 (optimizer steps)",
        "gamma": "a number > 0",
        "seed": "an integer >= 0",
    }
    return hints.get(field, "see docs/study.md")


def describe_errors(error: ValidationError, where: Any = None) -> list[str]:
    """One line per pydantic error: `<where><field>: <value> is not allowed: <why> (allowed: ...)`.

    `where(field)` gives a prefix such as 'experiments/x.toml: grid.lr' for a field name.
    """
    lines = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else ""
        label = where(field) if where else field
        if item["type"] == "extra_forbidden":
            lines.append(f"{label}: unknown option; known options are: {', '.join(CONFIG_FIELDS)}")
            continue
        value = item.get("input")
        reason = item["msg"].removeprefix("Value error, ")
        # Literal and cross-field messages already say what is allowed.
        helpful = field in CONFIG_FIELDS and item["type"] not in ("literal_error", "value_error")
        allowed = f" (allowed: {allowed_values(field)})" if helpful else ""
        shown = "missing" if value is None else f"{value!r} is not allowed"
        if len(item["loc"]) > 1:  # one element of a tuple, e.g. a channel count
            shown = f"{value!r} (position {int(item['loc'][1]) + 1}) is not allowed"
        lines.append(f"{label}: {shown}: {reason}{allowed}")
    return lines


def make_config(options: dict[str, Any], where: Any = None) -> RunConfig:
    """Build a RunConfig, turning validation errors into a `ConfigError` of readable lines."""
    try:
        return RunConfig(**options)
    except ValidationError as error:
        raise ConfigError(describe_errors(error, where)) from None


def varying_fields(configs: Iterable[dict[str, Any]]) -> list[str]:
    """The fields (seed excluded) that take more than one value among `configs` (dumps or
    Parquet columns), in RunConfig's order: an experiment's axes."""
    dumped = list(configs)
    return [
        name
        for name in CONFIG_FIELDS
        if name != "seed" and len({repr(config[name]) for config in dumped}) > 1
    ]
