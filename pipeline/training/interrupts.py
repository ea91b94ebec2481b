"""Ctrl-C and SIGTERM, remembered: the CLI's handlers record the signal here before raising, and
training checks the record at every batch.

Python delivers a signal as an exception wherever the main thread happens to be; a library that
catches it there (a logger, a data loader, a retry loop) swallows it, and training would run on.
The record makes the stop stick: the next batch raises again. Kept free of heavy imports: the CLI
installs its handlers before anything is validated.
"""

from __future__ import annotations

import signal

_received: int | None = None


def record(signum: int) -> None:
    global _received
    _received = signum


def received() -> int | None:
    """The signal that asked this process to stop, if any."""
    return _received


def stop_error() -> BaseException:
    """The exception a recorded signal stands for: KeyboardInterrupt for Ctrl-C, else SystemExit(128 + n)."""
    if _received == signal.SIGINT:
        return KeyboardInterrupt()
    return SystemExit(128 + (_received or signal.SIGTERM))
