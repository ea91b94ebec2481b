"""Who owns something (a standalone run, a sweep's driver lock): this host and process, and
whether an owner on this host is gone. Kept free of heavy imports."""

from __future__ import annotations

import os
import socket


def this_host() -> str:
    return socket.gethostname()


def process_gone(pid: int | str) -> bool:
    """True when no process `pid` exists on this host (a permission error means it does)."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (OSError, ValueError):
        return False
    return False
