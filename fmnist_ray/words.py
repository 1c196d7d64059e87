"""How counts and error texts are written in plain sentences, everywhere: the CLI, the runner's
summaries and the report."""

from __future__ import annotations


def plural(count: int, noun: str) -> str:
    """'1 run', '3 runs'."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


def error_headline(text: object) -> str:
    """The line that says what went wrong: a traceback's last line, else the first line."""
    lines = str(text or "").strip().splitlines()
    return lines[-1] if lines and lines[0].startswith("Traceback") else (lines or [""])[0]
