"""Where MLflow runs go, checked before anything is trained or written.

Light on purpose (no MLflow import): every command resolves and checks its URI first, so a dead
server or a missing store is one clear line in seconds, not MLflow's minutes of silent retries.
"""

from __future__ import annotations

import contextlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from attnlab.pipeline.config.errors import ConfigError

DEFAULT_DB = "mlflow.db"
TIMEOUT_S = 5.0
URI_ENV = "MLFLOW_TRACKING_URI"


def check_tracking_uri(flag: str | None = None, *, read_only: bool = False) -> str:
    """The tracking URI a command uses, checked: --tracking-uri, else MLFLOW_TRACKING_URI, else
    sqlite:///<cwd>/mlflow.db.

    Checking it may touch the outside: a server must answer its health check (one request); a
    writing command gets its sqlite store's folder created; a read-only command (best, report,
    findings, effects) needs an existing sqlite store and never creates one.
    """
    uri = flag or os.environ.get(URI_ENV) or f"sqlite:///{Path.cwd() / DEFAULT_DB}"
    if uri.startswith("file:") or "://" not in uri:
        raise ConfigError(
            f"tracking URI {uri!r} is a plain file store, which MLflow 3 deprecates; use "
            f"sqlite:///{Path(uri.removeprefix('file://')).resolve()}.db or an http(s):// server"
        )
    if is_server(uri):
        check_server(uri)
    elif uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        if read_only and not path.is_file():
            raise ConfigError(
                f"no MLflow store at {path} (tracking URI {uri}); run attnlab here first, or pass the "
                "--tracking-uri your runs went to"
            )
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
    return uri


def is_server(uri: str) -> bool:
    """Whether `uri` names an MLflow tracking server (http or https), not a local store."""
    return uri.startswith(("http://", "https://"))


def check_server(uri: str, timeout: float = TIMEOUT_S) -> None:
    """Raise one ConfigError naming `uri` unless the MLflow server answers /health in time."""
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout):  # noqa: S310 (http(s) only)
            return
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):  # alive, behind auth: MLflow itself will authenticate
            return
        reason = f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        reason = str(getattr(exc, "reason", exc))
    raise ConfigError(
        f"MLflow tracking server {uri} is unreachable ({reason}); check that `mlflow server` runs there and "
        "the address and port are right, or leave out --tracking-uri to use the local sqlite store"
    )


@contextlib.contextmanager
def process_uri_kept():
    """Put back MLflow's process-wide tracking URI, and MLFLOW_TRACKING_URI, as they were before.
    Lightning's MLflow logger sets both as it starts (`mlflow.set_tracking_uri`, which copies the
    URI into the environment for subprocesses): after `attnlab.train()` a caller's own MLflow calls
    went to attnlab's store, and every process it started later inherited it."""
    from mlflow.tracking._tracking_service import utils  # where MLflow keeps the process-wide URI

    env, chosen = os.environ.get(URI_ENV), getattr(utils, "_tracking_uri", None)
    try:
        yield
    finally:
        utils.set_tracking_uri(chosen)  # None: unset, and the environment's copy with it
        if env is None:
            os.environ.pop(URI_ENV, None)
        else:
            os.environ[URI_ENV] = env
