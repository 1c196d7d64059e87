"""Published values to check against (`--reference FILE`): a CSV with columns experiment, arm,
metric, value, note; `arm` is space-separated field=value pairs of the experiment's axes (empty
for an experiment without axes). A published value is one run, so it is checked against the 95%
prediction interval of one new run, not against the CI of our mean."""

from __future__ import annotations

import csv
import io
import math

from ..spec.config import CONFIG_FIELDS, format_value
from ..spec.metrics import NAMES
from .model import Arm, ExperimentReport, Reference, ReferenceCheck, ReportError
from .stats import summarize

COLUMNS = ("experiment", "arm", "metric", "value", "note")


def parse_references(text: str, source: str) -> list[Reference]:
    """The rows of a reference file; a malformed row is a ReportError naming file and line."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ReportError(f"{source}: missing column(s) {', '.join(missing)}; need {COLUMNS}")
    rows = []
    for line, row in enumerate(reader, start=2):
        where = f"{source}, line {line}"
        metric = (row["metric"] or "").strip()
        if metric not in NAMES:
            raise ReportError(f"{where}: metric {metric!r} is not one of {', '.join(NAMES)}")
        try:
            value = float(row["value"])
        except (TypeError, ValueError):
            raise ReportError(f"{where}: value {row['value']!r} is not a number") from None
        pairs = []
        for pair in (row["arm"] or "").split():
            field, sep, wanted = pair.partition("=")
            if not sep or field not in CONFIG_FIELDS:
                raise ReportError(f"{where}: arm {pair!r} is not field=value with a config field")
            pairs.append((field, wanted))
        note = (row["note"] or "").strip()
        rows.append(Reference(row["experiment"].strip(), tuple(pairs), metric, value, note, line))
    return rows


def _matches(arm: Arm, pairs: tuple[tuple[str, str], ...]) -> bool:
    """Whether the arm's config has these values (numbers compared as numbers: 1e-3 = 0.001)."""
    for field, wanted in pairs:
        ours = arm.config.get(field)
        if isinstance(ours, int | float) and not isinstance(ours, bool):
            try:
                if not math.isclose(float(wanted), ours, rel_tol=1e-9):
                    return False
            except ValueError:
                return False
        elif format_value(ours) != wanted.lower().replace(" ", ""):
            return False
    return True


def check_references(report: ExperimentReport, references: list[Reference]) -> list[str]:
    """Attach to `report` a check for each reference value of its experiment that names exactly
    one of its arms; return notes on the values that match no arm, or several."""
    notes = []
    for ref in (r for r in references if r.experiment == report.name):
        found = [arm for arm in report.arms if _matches(arm, ref.pairs)]
        if len(found) == 1:
            ours = summarize(found[0].finals(ref.metric))
            report.references.append(ReferenceCheck(found[0], ref, ours))
        else:
            why = "no arm" if not found else f"{len(found)} arms"
            notes.append(f"{report.name}: reference '{ref.arm_text}' {ref.metric} names {why}")
    return notes
