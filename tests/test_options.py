"""Every RunConfig field, declared once, reaches everything made from it: `train --help`, the
Parquet columns (and back), the plot label and the options tables of README.md and docs/study.md."""

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from helpers import cli_here

from fmnist_ray.spec.config import (
    CONFIG_FIELDS,
    NEUTRAL,
    SEED_FIELD,
    RunConfig,
    axis_label,
    format_value,
    from_columns,
    to_columns,
    value_type,
)
from fmnist_ray.store.results import CONFIG_COLUMNS

REPO = Path(__file__).resolve().parents[1]
# Every field of the first schema away from its default, so that one dropped or mangled anywhere
# shows (a field added later with a neutral value round-trips at that value).
WIDE = RunConfig(
    model="lenet5", epochs=3, batch_size=50, lr=0.002, optimizer="rmsprop", momentum=0.1,
    weight_decay=0.0001, loss="multi_margin", activation="relu", pooling="max", batchnorm=True,
    dropout=True, channels=(4, 8, 16), scheduler="steplr", step_size=400, gamma=0.9, seed=3,
)  # fmt: skip
FC = RunConfig(model="fc")  # the other model, and LeNet-5's options unset
ARROW = {str: pa.string(), bool: pa.bool_(), int: pa.int64(), float: pa.float64()}


@pytest.fixture(scope="module")
def train_help() -> str:
    done = cli_here("train", "--help", env={"COLUMNS": "1000"})  # one line per option
    assert done.returncode == 0, done.stderr
    return done.stdout


def table_row(path: Path, name: str) -> str:
    text = path.read_text().split("<!-- options:begin -->")[1].split("<!-- options:end -->")[0]
    rows = [line for line in text.splitlines() if line.startswith(f"| `{name}` |")]
    assert len(rows) == 1, f"{path.name}: {len(rows)} rows for {name}"
    return rows[0]


def test_every_field_is_changed_by_the_wide_config():
    default = RunConfig()
    same = [f for f in CONFIG_FIELDS if getattr(WIDE, f) == getattr(default, f)]
    assert [f for f in same if f not in NEUTRAL] == ["model"]
    assert FC.model != default.model


@pytest.mark.parametrize("name", list(RunConfig.model_fields))
def test_a_field_agrees_everywhere(name, train_help):
    info = RunConfig.model_fields[name]
    assert info.description, f"{name} has no description"
    dashed = "--" + name.replace("_", "-")
    [line] = [line for line in train_help.splitlines() if f" {dashed} " in line]
    assert info.description.replace("`", "") in line
    assert f"Default: {format_value(getattr(RunConfig(), name))}." in line
    if value_type(name) is bool:
        assert f"--no-{name.replace('_', '-')}" in line
    # The Parquet column: typed from the field, and the value round-trips.
    expected = pa.string() if value_type(name) is tuple else ARROW[value_type(name)]
    assert CONFIG_COLUMNS.field(name).type == expected
    rows = pa.Table.from_pylist([to_columns(c) for c in (WIDE, FC)], schema=CONFIG_COLUMNS)
    for cfg, row in zip((WIDE, FC), rows.to_pylist(), strict=True):
        assert getattr(from_columns(row), name) == getattr(cfg, name)
    assert axis_label(name)
    # The docs: one row per field in each table, with its default; study.md with its meaning.
    default = format_value(getattr(RunConfig(), name))
    for path in (REPO / "README.md", REPO / "docs" / "study.md"):
        row_text = table_row(path, name)
        assert f"`{default}`" in row_text or "unset" in row_text
    assert info.description in table_row(REPO / "docs" / "study.md", name)
    if name == SEED_FIELD:
        assert "seeds = [...]" in table_row(REPO / "README.md", name)


def test_the_docs_tables_are_written_from_runconfig():
    done = subprocess.run([sys.executable, "docs/options.py", "--check"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
