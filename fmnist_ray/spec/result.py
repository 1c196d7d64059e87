"""`RunResult`: what training one run hands back, the one record between a trainer and the
store. Plain data (no torch, no pyarrow), so a Ray driver unpickles it without loading torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RunResult:
    """A trained run: one row per epoch (`epoch` and each metric of spec.metrics), its status
    (`ok`, or `diverged` when the loss stopped being finite, history kept) and its metadata.
    Training fills in what it knows (device, step, threads, torch's versions); whoever trained
    it adds times, host and placement (store.results.run_metadata) before it is written."""

    history: list[dict[str, float]] = field(default_factory=list)
    status: str = "ok"
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> dict[str, float]:
        """The last epoch's row ({} before the first)."""
        return self.history[-1] if self.history else {}
