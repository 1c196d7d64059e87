"""The root of every user-facing error (a bad option or file, missing data, an unreachable
cluster or store, a held lock, nothing to report): the CLI prints its `lines` as `error:` lines,
the Python API raises it as it is."""

from __future__ import annotations


class FmnistRayError(Exception):
    """A user mistake or an environment problem, said in plain words; `str` is the message."""

    @property
    def lines(self) -> list[str]:
        """The message as the CLI prints it: one `error:` line each."""
        return [str(self)]
