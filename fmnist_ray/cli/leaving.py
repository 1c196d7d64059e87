"""How the installed command leaves the process: Python's own shutdown, then an immediate exit.

A command that had done all its work and printed its whole summary sometimes died at exit with
"terminate called without an active exception" (SIGABRT, exit 134): 11 of 701 reruns with nothing
to train, on a loaded machine. That is the C++ runtime destroying a native thread pool's statics
(Arrow's, after Parquet reads) while a worker thread is still joinable (apache/arrow#34314,
#39862). So the command runs what Python's shutdown runs for Python code, in the same order (wait
for non-daemon threads, then the atexit functions: Ray's shutdown, logging's flush), flushes its
streams and ends with `os._exit`, which skips the native teardown that has nothing left to do.
Only the console entry leaves this way; `main()` called in a process keeps raising SystemExit."""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn

from .commands import main


def console() -> NoReturn:
    """The `fmnist-ray` command and `python -m fmnist_ray`: `main()`, then `leave` with its code.
    Any other exception propagates as Python would show it."""
    try:
        main()
        code: object = 0
    except SystemExit as done:
        code = done.code
    leave(code)


def leave(code: object) -> NoReturn:
    """Exit with what the interpreter would make of `SystemExit(code)`, after Python's shutdown
    steps for Python code and without the native static destructors."""
    status = exit_status(code)
    shutdown = getattr(threading, "_shutdown", None)  # what Py_Finalize runs first
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe, or a stream already closed
            status = status or 120  # what Python exits with when its final flush fails
    os._exit(status)


def exit_status(code: object) -> int:
    """As the interpreter reads SystemExit's code: None is 0, an int is itself, anything else is
    printed to stderr and is 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1
