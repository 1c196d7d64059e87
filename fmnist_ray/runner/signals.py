"""Signals during a grid: SIGTERM and SIGHUP end it the way Ctrl-C does, a signal that comes
while the driver records a run waits until the run is recorded, and while finished runs are
being saved afterwards, further signals only say so instead of cutting that short."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

STOPPING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_received: list[int] = []  # Ray's wait may re-raise our exception as a plain KeyboardInterrupt


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, handled as Ctrl-C is."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_interrupted(signum, frame) -> None:
    _received.append(signum)
    raise Interrupted(signum)


def signal_of(interrupt: KeyboardInterrupt) -> int:
    """Which signal ended the grid: SIGTERM/SIGHUP if one was received, else SIGINT."""
    return getattr(interrupt, "signum", (_received or [signal.SIGINT])[-1])


@contextmanager
def _handlers(wanted: dict[int, Callable]) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; elsewhere the defaults stay
        return
    saved = {sig: signal.signal(sig, action) for sig, action in wanted.items()}
    try:
        yield
    finally:
        for sig, action in saved.items():
            signal.signal(sig, action)


@contextmanager
def held() -> Iterator[None]:
    """A stopping signal that comes meanwhile is sent again at the end, to whatever handler was
    there before (raising, saying, or ignoring it): a few steps that must not be cut apart."""
    came: list[int] = []
    try:
        with _handlers(dict.fromkeys(STOPPING, lambda signum, frame: came.append(signum))):
            yield
    finally:
        if came:
            signal.raise_signal(came[0])


@contextmanager
def interruptible() -> Iterator[None]:
    """SIGTERM and SIGHUP raise Interrupted (a KeyboardInterrupt), as SIGINT does."""
    _received.clear()
    with _handlers({signal.SIGTERM: _raise_interrupted, signal.SIGHUP: _raise_interrupted}):
        yield


@contextmanager
def patient(say: Callable[[], None]) -> Iterator[None]:
    """While saving after an interrupt: SIGINT, SIGTERM and SIGHUP only call `say`."""
    with _handlers(dict.fromkeys(STOPPING, lambda signum, frame: say())):
        yield
