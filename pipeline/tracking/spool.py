"""What a training run could not send to an unreachable tracking server, kept on disk and sent later.

A run's metrics, params and checkpoint uploads go through a `Spool`. Each call is tried once, with
MLflow's own retries off for it (`quick_send`), so training never waits on a server that is down; what fails
because the server cannot be reached is appended, in order, to a JSON-lines file (an upload's file
is copied beside it first), and replayed in order as soon as the server answers again. At the end
of a run everything left is sent, waiting for the server as long as it takes up to a limit. Errors
that are not about reaching the server (a bad request) are raised as before.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from attnlab.pipeline.tracking.quick_send import QuickSender

RETRY_EVERY_S = 10.0


def unreachable(error: BaseException) -> bool:
    """Whether `error` says the server could not be reached or is not serving (vs. a bad request)."""
    import requests

    if isinstance(error, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError)):
        return True
    if isinstance(error, MlflowException):
        text = str(error)
        return any(
            s in text
            for s in (
                "Max retries exceeded",
                "Connection refused",
                "Connection aborted",
                "timed out",
                " 502",
                " 503",
            )
        ) or error.get_http_status_code() in (502, 503, 504)
    return False


class Spool:
    """The run's tracking calls, sent now or, while the server is unreachable, later, in order."""

    def __init__(self, uri: str, folder: str | Path):
        self.uri, self.folder = uri, Path(folder)
        self.sender = QuickSender(uri)
        self.file = self.folder / "pending.jsonl"
        self.next_try = 0.0
        self.logged: set[tuple[str, int]] = set()

    def resuming(self, run_id: str) -> None:
        """A trial's run trains again (a retry or a resume, from a checkpoint or from scratch): an
        earlier attempt may have logged metrics past where this one starts (sent, or still pending
        here) before it died; the retrained steps are not logged again, so each metric's history
        holds each step once (on a CPU the values are the same: pipeline/training/randomness.py).
        With the server unreachable now, nothing is known and everything is logged."""
        try:
            client = MlflowClient(self.uri)
            keys = client.get_run(run_id).data.metrics
            self.logged = {(k, m.step) for k in keys for m in client.get_metric_history(run_id, k)}
        except Exception as error:  # noqa: BLE001 - only unreachable-server errors are let go
            if not unreachable(error):
                raise
        for op in self.pending:
            if op["op"] == "log_batch" and op["run_id"] == run_id:
                self.logged |= {(key, step) for key, _, _, step in op["metrics"]}

    @property
    def pending(self) -> list[dict]:
        if not self.file.exists():
            return []
        return [json.loads(line) for line in self.file.read_text().splitlines() if line.strip()]

    def log_batch(self, run_id: str, metrics=(), params=(), tags=()) -> None:
        """Each metric's step once per run: a point at a (key, step) already logged is dropped."""
        metrics = [m for m in metrics if (m.key, m.step) not in self.logged]
        self.logged |= {(m.key, m.step) for m in metrics}
        if not (metrics or params or tags):
            return
        self._call(
            {
                "op": "log_batch",
                "run_id": run_id,
                "metrics": [[m.key, m.value, m.timestamp, m.step] for m in metrics],
                "params": [[p.key, p.value] for p in params],
                "tags": [[t.key, t.value] for t in tags],
            }
        )

    def log_artifact(self, run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
        self._call(
            {"op": "log_artifact", "run_id": run_id, "path": str(path), "artifact_path": artifact_path}
        )

    def _call(self, op: dict[str, Any]) -> None:
        if self.file.exists():
            self._append(op)
            self.flush()
            return
        try:
            self._send(op)
        except Exception as error:  # noqa: BLE001 - only unreachable-server errors are kept
            if not unreachable(error):
                raise
            self._append(op)
            self.next_try = time.monotonic() + RETRY_EVERY_S
            print(
                f"attnlab: tracking server {self.uri} unreachable; training goes on and keeps what it "
                f"logs in {self.file} until the server is back",
                file=sys.stderr,
                flush=True,
            )

    def _append(self, op: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if op["op"] == "log_artifact":  # the caller may delete its file once we return
            kept = self.folder / "files" / uuid.uuid4().hex / Path(op["path"]).name
            kept.parent.mkdir(parents=True)
            shutil.copy2(op["path"], kept)
            op = {**op, "path": str(kept)}
        with self.file.open("a") as f:
            f.write(json.dumps(op) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def _send(self, op: dict[str, Any]) -> None:
        if op["op"] == "log_batch":
            self.sender.log_batch(
                op["run_id"],
                metrics=[Metric(k, v, ts, step) for k, v, ts, step in op["metrics"]],
                params=[Param(k, v) for k, v in op["params"]],
                tags=[RunTag(k, v) for k, v in op["tags"]],
            )
        elif op["op"] == "log_artifact":
            self.sender.log_artifact(op["run_id"], op["path"], op["artifact_path"])

    def flush(self, wait_s: float = 0.0) -> bool:
        """Send what is pending, in order; True when nothing is left. With `wait_s`, keep trying
        that long while the server is unreachable; without, try at most every RETRY_EVERY_S."""
        deadline = time.monotonic() + wait_s
        if not wait_s and time.monotonic() < self.next_try:
            return not self.file.exists()
        while self.file.exists():
            ops = self.pending
            sent = 0
            try:
                for op in ops:
                    self._send(op)
                    sent += 1
            except Exception as error:  # noqa: BLE001
                if not unreachable(error):
                    raise
            self._keep(ops[sent:])
            if not self.file.exists():
                break
            if time.monotonic() >= deadline:
                self.next_try = time.monotonic() + RETRY_EVERY_S
                return False
            time.sleep(min(RETRY_EVERY_S, max(0.0, deadline - time.monotonic())))
        return True

    def _keep(self, ops: list[dict]) -> None:
        """Rewrite the pending file with `ops` (atomically), or remove it when none are left."""
        if not ops:
            self.file.unlink(missing_ok=True)
            shutil.rmtree(self.folder / "files", ignore_errors=True)
            return
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(op) + "\n" for op in ops))
        os.replace(tmp, self.file)


class SpooledClient:
    """An MlflowClient whose `log_batch` goes through the spool (what Lightning's MLFlowLogger
    calls for metrics and params); every other call goes straight to the client."""

    def __init__(self, client: MlflowClient, spool: Spool):
        self._client, self._spool = client, spool

    def log_batch(self, run_id: str, metrics=(), params=(), tags=(), **_: Any) -> None:
        self._spool.log_batch(run_id, metrics, params, tags)

    def __getattr__(self, name: str):
        return getattr(self._client, name)
