"""The report: figures and summary tables from a results tree (`make_report`). Importing the
package, or `ReportError` from it, loads no matplotlib or scipy: the rest loads on first use."""

from __future__ import annotations

import importlib
from typing import Any

from .model import ReportError

# Public name -> the module that defines it, imported when the name is first used.
_LAZY = {
    "make_report": "build",
    "load_reports": "build",
    "ReportResult": "build",
    "default_out_dir": "load",
}

__all__ = ["ReportError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
