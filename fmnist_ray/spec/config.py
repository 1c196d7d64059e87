"""What one training run is: `RunConfig` (every option of docs/study.md, each declared once with
its description, allowed values and plot label), its `run_id`, and the per-run `Resources` (never
part of the id). A field added later declares a neutral value: see `option` and docs/schema.md."""

from __future__ import annotations

import hashlib
import json
import types
from collections.abc import Iterable
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from ..errors import FmnistRayError

ModelName = Literal["fc", "lenet5"]
Optimizer = Literal["adam", "sgd", "rmsprop"]
Loss = Literal["cross_entropy", "multi_margin", "mse"]
Activation = Literal["tanh", "relu", "leaky_relu"]
Pooling = Literal["avg", "max"]
Scheduler = Literal["none", "steplr"]

PositiveInt = Annotated[int, Field(strict=True, ge=1)]
PositiveFloat = Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]

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
# The replicate: runs that differ only in it are one arm; experiment files set it with `seeds`.
SEED_FIELD = "seed"
_NO_NEUTRAL = object()


def option(
    default: Any,
    description: str,
    *,
    allowed: str | None = None,
    label: str | None = None,
    needs: str | None = None,
    neutral: Any = _NO_NEUTRAL,
    **field_options: Any,
) -> Any:
    """Declare a RunConfig field once: `description` (--help, docs), `allowed` (in words, for
    fields that are not a Literal), `label` (plot axes; default: the name), `needs` (the field
    that decides whether it applies) and `neutral`.

    `neutral`: for a field added after results exist, the value that computes exactly what the
    code did before the field existed. At that value the field is left out of the run id, and a
    result file or stored config without it reads back with it at that value; so old run ids and
    old result files stay valid. Fields of the first schema declare none.
    """
    extra = {"allowed": allowed, "label": label, "needs": needs}
    if neutral is not _NO_NEUTRAL:
        extra["neutral"] = neutral
    return Field(default, description=description, json_schema_extra=extra, **field_options)


class ConfigError(FmnistRayError, ValueError):
    """A user mistake in a run's options: each entry of `problems` is one readable line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))

    @property
    def lines(self) -> list[str]:
        return self.problems


class RunConfig(BaseModel):
    """One training run. Defaults are the study's base case (LeNet-5, 20 epochs, Adam 1e-3).

    Each field is declared once, with `option(...)`: its description, allowed values, plot label,
    the field it depends on and, for a field added later, its neutral value. The `train` options,
    the Parquet columns, the report's labels and the docs' options tables all derive from it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    model: ModelName = option("lenet5", "The network: LeNet-5 or a fully connected net.")
    epochs: PositiveInt = option(20, "Passes over the training set.", allowed="an integer >= 1")
    batch_size: PositiveInt = option(
        100,
        "Images per optimizer step; the last batch of an epoch may be smaller.",
        allowed="an integer >= 1",
        label="batch size (images per step)",
    )
    lr: PositiveFloat = option(
        0.001, "Learning rate.", allowed="a number > 0", label="learning rate lr"
    )
    optimizer: Optimizer = option(
        "adam", "The optimizer; `sgd` is plain SGD (no momentum) unless `momentum` is set."
    )
    momentum: NonNegativeFloat | None = option(
        None,
        "Momentum, for `sgd` and `rmsprop` only.",
        allowed="a number >= 0",
        needs="optimizer",
        validate_default=True,
    )
    weight_decay: NonNegativeFloat = option(
        0.0,
        "L2 penalty, as PyTorch's optimizers apply it.",
        allowed="a number >= 0",
        label="weight decay",
    )
    loss: Loss = option(
        "cross_entropy",
        "The loss; `mse` compares a softmax output with one-hot targets (the softmax is added "
        "to the model); `multi_margin` is PyTorch's `MultiMarginLoss` with its defaults.",
    )
    # LeNet-5 only: None for `fc`, filled with the base case for `lenet5`.
    activation: Activation | None = option(
        None, "LeNet-5 only: every hidden layer's activation.", needs="model", validate_default=True
    )
    pooling: Pooling | None = option(
        None, "LeNet-5 only: 2 x 2 pooling.", needs="model", validate_default=True
    )
    batchnorm: Annotated[bool, Field(strict=True)] | None = option(
        None,
        "LeNet-5 only: batch norm after each convolution.",
        allowed="true or false",
        needs="model",
        validate_default=True,
    )
    dropout: Annotated[bool, Field(strict=True)] | None = option(
        None,
        "LeNet-5 only: dropout, p = 0.3, after the first linear layer (before its activation).",
        allowed="true or false",
        needs="model",
        validate_default=True,
    )
    channels: tuple[PositiveInt, PositiveInt, PositiveInt] | None = option(
        None,
        "LeNet-5 only: channels of the two convolutions and of the first linear layer.",
        allowed="three integers >= 1 (c1,c2,c3)",
        label="channels (c1,c2,c3)",
        needs="model",
        validate_default=True,
    )
    scheduler: Scheduler = option(
        "none",
        "Learning-rate schedule: StepLR, stepped after every batch (so `step_size` counts "
        "optimizer steps: with batch 100, one epoch is 600 steps).",
    )
    step_size: PositiveInt | None = option(
        None,
        "StepLR only (required with it): multiply the rate by `gamma` every `step_size` steps.",
        allowed="an integer >= 1 (optimizer steps)",
        label="StepLR step_size (optimizer steps)",
        needs="scheduler",
        validate_default=True,
    )
    gamma: PositiveFloat | None = option(
        None,
        "StepLR only (required with it): the factor applied every `step_size` steps.",
        allowed="a number > 0",
        label="StepLR gamma (factor per step_size)",
        needs="scheduler",
        validate_default=True,
    )
    seed: Annotated[int, Field(strict=True, ge=0)] = option(
        0, "Initial weights, dropout masks and the shuffling order.", allowed="an integer >= 0"
    )

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
        """The resolved config as compact JSON with sorted keys, fields at their neutral value
        left out (so adding such a field keeps every existing id): the input of `run_id`."""
        values = self.model_dump(mode="json")
        kept = {k: v for k, v in values.items() if k not in NEUTRAL or v != NEUTRAL[k]}
        return json.dumps(kept, sort_keys=True, separators=(",", ":"))

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


DEFAULT_GPUS_PER_RUN = 0.25  # the share where GPU memory is not measured; 1/this caps runs per GPU
DEFAULT_RETRIES = 2  # Ray's retries of a run whose worker or node died


class Resources(BaseModel):
    """What Ray reserves for each run. Not part of the run id: where a run ran never changes it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gpus: Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)] | None = None
    cpus: Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)] = 1.0


CONFIG_FIELDS: tuple[str, ...] = tuple(RunConfig.model_fields)


def declared(field: str, key: str) -> Any:
    """What `option(...)` declared for a field: 'allowed', 'label', 'needs' or 'neutral'."""
    extra = RunConfig.model_fields[field].json_schema_extra
    return extra.get(key) if isinstance(extra, dict) else None


# Fields added after results existed, with the value that computes what the code did before.
NEUTRAL: dict[str, Any] = {
    name: extra["neutral"]
    for name, info in RunConfig.model_fields.items()
    if isinstance(extra := info.json_schema_extra, dict) and "neutral" in extra
}
# field -> the field that decides whether it applies (LeNet-5 options -> model, ...).
NEEDS: dict[str, str] = {f: declared(f, "needs") for f in CONFIG_FIELDS if declared(f, "needs")}


def value_type(field: str) -> Any:
    """A field's plain type: str (also for a Literal), bool, int, float or tuple."""
    annotation = RunConfig.model_fields[field].annotation
    if get_origin(annotation) in (Union, types.UnionType):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) is Literal:
        return str
    return get_origin(annotation) or annotation


def choices(field: str) -> list[str]:
    """A Literal field's values in declared order (empty for other fields)."""
    annotation = RunConfig.model_fields[field].annotation
    found = [a for arg in get_args(annotation) for a in (get_args(arg) or [arg])]
    return [c for c in found if isinstance(c, str)]


def axis_label(field: str) -> str:
    """How plots name a field's axis."""
    return declared(field, "label") or field


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
    """What a field accepts, in words, for error messages, --help and the docs."""
    literals = choices(field)
    if literals:
        return "one of " + ", ".join(repr(c) for c in literals)
    return declared(field, "allowed") or "see docs/study.md"


def to_columns(cfg: RunConfig) -> dict[str, Any]:
    """The config as flat Parquet column values: a tuple as 'c1,c2,c3' (groupable)."""
    values = cfg.model_dump()
    return {k: format_value(v) if isinstance(v, tuple) else v for k, v in values.items()}


def from_columns(columns: dict[str, Any]) -> RunConfig:
    """The inverse of `to_columns` (a missing field of declared neutral value takes it)."""
    values = {k: v for k, v in columns.items() if k in CONFIG_FIELDS}
    for name, value in values.items():
        if value_type(name) is tuple and isinstance(value, str):
            values[name] = tuple(int(part) for part in value.split(","))
    return stored_config(values)


def stored_config(values: dict[str, Any]) -> RunConfig:
    """A config as stored by any schema version (result metadata, failure records): a field of
    declared neutral value that it lacks was not there yet, so it takes that value."""
    return RunConfig.model_validate(NEUTRAL | values)


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
