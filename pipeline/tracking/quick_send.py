"""One quick try at sending a run's batch or file to an MLflow server, with MLflow's retries off for
that call alone.

While a run trains, the spool (not MLflow's back-off of several minutes) rides out a server that is
down, so each send is tried once with a short timeout. MlflowClient reads its retries and timeout
only from the environment, which would change them for every thread of the process; MLflow's REST
helper (`http_request`) takes them per call, so the two requests the spool makes go through it, to
the same endpoints and with the same bodies the client sends. A URI that is not a server (a folder,
a database) involves no HTTP retries and goes through the client as before.
"""

from __future__ import annotations

import json
import mimetypes
import posixpath
from itertools import zip_longest

from mlflow.entities import Metric, Param, RunTag
from mlflow.protos.service_pb2 import LogBatch
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.store.artifact.http_artifact_repo import HttpArtifactRepository
from mlflow.tracking import MlflowClient
from mlflow.utils.credentials import get_default_host_creds
from mlflow.utils.proto_json_utils import message_to_json
from mlflow.utils.request_utils import augmented_raise_for_status
from mlflow.utils.rest_utils import http_request, verify_rest_response
from mlflow.utils.validation import MAX_METRICS_PER_BATCH, MAX_PARAMS_TAGS_PER_BATCH

from attnlab.pipeline.tracking.uri import is_server

TIMEOUT_S = 20
ONE_TRY = {"max_retries": 0, "timeout": TIMEOUT_S}
LOG_BATCH = "/api/2.0/mlflow/runs/log-batch"
GET_RUN = "/api/2.0/mlflow/runs/get"


def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)] or [[]]


class QuickSender:
    """Sends to the tracking server at `uri`, each call tried once (see the module's docstring)."""

    def __init__(self, uri: str):
        self.uri = uri
        self.over_http = is_server(uri)
        self._artifact_uris: dict[str, str] = {}

    def log_batch(self, run_id: str, metrics: list[Metric], params: list[Param], tags: list[RunTag]) -> None:
        if not self.over_http:
            MlflowClient(self.uri).log_batch(run_id, metrics=metrics, params=params, tags=tags)
            return
        creds = get_default_host_creds(self.uri)
        for m, p, t in zip_longest(
            _chunks(metrics, MAX_METRICS_PER_BATCH),
            _chunks(params, MAX_PARAMS_TAGS_PER_BATCH),
            _chunks(tags, MAX_PARAMS_TAGS_PER_BATCH),
            fillvalue=[],
        ):
            body = LogBatch(
                run_id=run_id,
                metrics=[x.to_proto() for x in m],
                params=[x.to_proto() for x in p],
                tags=[x.to_proto() for x in t],
            )
            payload = json.loads(message_to_json(body))
            response = http_request(creds, LOG_BATCH, "POST", json=payload, **ONE_TRY)
            verify_rest_response(response, LOG_BATCH)

    def log_artifact(self, run_id: str, path: str, artifact_path: str | None) -> None:
        repo = get_artifact_repository(self._artifact_uri(run_id), tracking_uri=self.uri)
        if not isinstance(repo, HttpArtifactRepository):  # a folder or a cloud store: no MLflow retries
            repo.log_artifact(path, artifact_path)
            return
        name = posixpath.basename(path)
        endpoint = posixpath.join("/", *([artifact_path] if artifact_path else []), name)
        headers = {"Content-Type": mimetypes.guess_type(name)[0] or "application/octet-stream"}
        with open(path, "rb") as f:
            creds = get_default_host_creds(repo.artifact_uri)
            response = http_request(creds, endpoint, "PUT", data=f, extra_headers=headers, **ONE_TRY)
        augmented_raise_for_status(response)

    def _artifact_uri(self, run_id: str) -> str:
        """The run's artifact root, asked once per run (one quick try, like the sends)."""
        if run_id not in self._artifact_uris:
            if self.over_http:
                response = http_request(
                    get_default_host_creds(self.uri), GET_RUN, "GET", params={"run_id": run_id}, **ONE_TRY
                )
                uri = verify_rest_response(response, GET_RUN).json()["run"]["info"]["artifact_uri"]
            else:
                uri = MlflowClient(self.uri).get_run(run_id).info.artifact_uri
            self._artifact_uris[run_id] = uri
        return self._artifact_uris[run_id]
