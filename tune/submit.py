"""`attnlab submit`: a sweep as a KubeRay RayJob, or as a Ray job on a running cluster.

The RayJob's entrypoint is `attnlab sweep ... --name <fixed>` with storage on shared storage,
so a retried job (backoffLimit: each retry gets a new cluster) resumes the same sweep. Secrets
are referenced by name (envFrom / secretKeyRef), never embedded.
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
import time
from typing import Any

import yaml

from attnlab.pipeline.config.errors import ConfigError

# The image's and the manifests' Ray: the tested one in constraints.txt (a test keeps them equal).
RAY_VERSION = "2.60.0"
RAY_TOKEN_SECRET = "attnlab-ray-token"
SHARED_SWEEPS = "/shared/sweeps"  # the shared volume every Ray pod mounts at /shared
DNS_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def job_name(sweep_name: str) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", f"attnlab-{sweep_name}".lower()).strip("-")[:63].rstrip("-")
    if not DNS_RE.match(name):
        raise ConfigError(f"sweep name {sweep_name!r} cannot form a Kubernetes name")
    return name


def sweep_source(preset: str | None, sweep_config: dict | None) -> list[str]:
    """How the cluster gets the sweep: a preset by name (the image has the same attnlab), or the
    validated config itself, inline, so a local YAML file needs no copy in the image."""
    if preset:
        return ["--preset", preset]
    if sweep_config is None:
        raise ConfigError("give --preset NAME or --config FILE")
    return ["--config-json", json.dumps(sweep_config, separators=(",", ":"), sort_keys=True)]


def entrypoint(source: list[str], sweep_name: str, storage: str | None) -> str:
    """`attnlab sweep` on a fixed name: a retried job resumes the same sweep; its job log ends with
    the sweep's JSON summary, for whatever reads the job."""
    where = ["--storage", storage] if storage else []
    return shlex.join(["attnlab", "sweep", *source, "--name", sweep_name, *where, "--format", "json"])


def _security() -> dict:
    return {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }


def _container(name: str, image: str, cpu: str, memory: str, gpus: int, env_secret: str) -> dict:
    limits = {"cpu": cpu, "memory": memory, **({"nvidia.com/gpu": str(gpus)} if gpus else {})}
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": limits},
        "securityContext": _security(),
        "envFrom": [{"secretRef": {"name": env_secret}}],
        "env": [
            {"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow:5000"},
            {"name": "RAY_TRAIN_V2_ENABLED", "value": "1"},
        ],
        "volumeMounts": [{"name": "shared", "mountPath": "/shared"}],
    }


def _pod(container: dict, shared_claim: str, node_selector: dict | None = None) -> dict:
    spec: dict[str, Any] = {
        "containers": [container],
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "fsGroup": 1000},
        "volumes": [{"name": "shared", "persistentVolumeClaim": {"claimName": shared_claim}}],
    }
    if node_selector:
        spec["nodeSelector"] = node_selector
    return {"spec": spec}


def render_rayjob(
    sweep_name: str,
    image: str,
    source: list[str],
    *,
    namespace: str = "attnlab",
    workers: int = 2,
    gpus_per_worker: int = 1,
    max_workers: int | None = None,
    shared_claim: str = "attnlab-shared",
    env_secret: str = "attnlab-env",
    ray_token_secret: str = RAY_TOKEN_SECRET,
    storage: str = SHARED_SWEEPS,
    backoff_limit: int = 3,
) -> dict:
    """The RayJob manifest (a dict) for one sweep. Ray's token auth is on, with the token read from
    a Secret the user created (key `auth_token`), so every retry's new cluster shares it."""
    if workers < 0 or gpus_per_worker < 0:
        raise ConfigError("--workers and --gpus-per-trial must be >= 0")
    head = _container("ray-head", image, "2", "8Gi", 0, env_secret)
    head["ports"] = [{"containerPort": 6379, "name": "gcs"}, {"containerPort": 8265, "name": "dashboard"}]
    worker = _container("ray-worker", image, "8", "48Gi", gpus_per_worker, env_secret)
    group = {
        "groupName": "gpu" if gpus_per_worker else "cpu",
        "replicas": workers,
        "minReplicas": 0,
        "maxReplicas": max(workers, max_workers or workers),
        "rayStartParams": {},
        "template": _pod(worker, shared_claim),
    }
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {
            "name": job_name(sweep_name),
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "attnlab", "attnlab/sweep": sweep_name},
        },
        "spec": {
            "entrypoint": entrypoint(source, sweep_name, storage),
            "shutdownAfterJobFinishes": True,
            "ttlSecondsAfterFinished": 3600,
            "backoffLimit": backoff_limit,
            "submissionMode": "K8sJobMode",
            "rayClusterSpec": {
                "rayVersion": RAY_VERSION,
                "enableInTreeAutoscaling": True,
                "authOptions": {"mode": "token", "secretName": ray_token_secret},
                "headGroupSpec": {
                    "rayStartParams": {"dashboard-host": "0.0.0.0"},
                    "template": _pod(head, shared_claim),
                },
                "workerGroupSpecs": [group],
            },
        },
    }


def to_yaml(manifest: dict) -> str:
    return yaml.safe_dump(manifest, sort_keys=False)


def create_rayjob(manifest: dict) -> str:
    """Create it through the Kubernetes API (kubeconfig, else in-cluster config)."""
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException

    try:
        config.load_kube_config()
    except (ConfigException, OSError):
        try:
            config.load_incluster_config()
        except ConfigException:
            raise ConfigError(
                "no Kubernetes configuration: no kubeconfig (KUBECONFIG or ~/.kube/config) and not "
                "inside a cluster; point KUBECONFIG at your cluster, or use --dry-run to print the "
                "RayJob"
            ) from None
    meta = manifest["metadata"]
    try:
        client.CustomObjectsApi().create_namespaced_custom_object(
            group="ray.io", version="v1", namespace=meta["namespace"], plural="rayjobs", body=manifest
        )
    except ApiException as exc:
        if exc.status == 409:
            raise ConfigError(
                f"rayjob/{meta['name']} already exists in namespace {meta['namespace']}: it is "
                "running or keeping this sweep; watch it with `kubectl -n "
                f"{meta['namespace']} get rayjob {meta['name']}`, or delete it first to start "
                "again (the sweep resumes from shared storage)"
            ) from None
        if exc.status == 404:
            raise ConfigError(
                f"the cluster has no RayJob resource or no namespace {meta['namespace']!r}: install "
                "the KubeRay operator (v1.7) and create the namespace (README, Run on a cluster)"
            ) from None
        raise
    return f"rayjob/{meta['name']} created in namespace {meta['namespace']}"


AGENT_WAIT_S = 30  # the dashboard waits 10 s for an agent per request


def submit_to_ray(
    address: str, source: list[str], sweep_name: str, storage: str | None, tracking_uri: str | None = None
) -> str:
    """Submit the same sweep to a running Ray cluster through the Job Submission API."""
    from ray.job_submission import JobSubmissionClient

    env = {
        "RAY_TRAIN_V2_ENABLED": "1",
        "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": "900",
        **({"MLFLOW_TRACKING_URI": tracking_uri} if tracking_uri else {}),
    }
    client = JobSubmissionClient(address)
    deadline = time.monotonic() + AGENT_WAIT_S
    while True:  # a head started seconds ago may not have its job agent yet
        try:
            return client.submit_job(
                entrypoint=entrypoint(source, sweep_name, storage),
                runtime_env={"env_vars": env},
                submission_id=f"{job_name(sweep_name)}-{_suffix()}",
            )
        except RuntimeError as exc:
            if "No available agent" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise ConfigError(
                    f"the Ray head at {address} has no job agent to run the sweep (waited "
                    f"{AGENT_WAIT_S} s): its dashboard agent did not start or could not bind its port "
                    "(52365 unless set; another Ray on the head's machine may hold it). Restart the "
                    "head with `ray start --head --dashboard-agent-listen-port PORT` on a free port; "
                    "nothing was submitted"
                ) from None


def _suffix() -> str:

    return secrets.token_hex(3)
