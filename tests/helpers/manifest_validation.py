"""Strict manifest validation, after `kubeconform -strict`: an unknown field anywhere is an error
naming the field's path (`spec.rayClusterSpec.rayVersoin`), not a field the API server would drop
without a word. Built-in kinds go through kubernetes-validate (strict); RayJob and RayCluster
through KubeRay v1.7.0's CRD schemas, whose objects are closed here wherever they list their
properties (a CRD's own schema leaves them open, so a misspelt key would pass)."""

from __future__ import annotations

import copy
import gzip

import jsonschema
import kubernetes_validate
import yaml
from repo import ROOT

SCHEMAS = ROOT / "k8s" / "schemas" / "kuberay-v1.7.0"
K8S_VERSION = "1.33.0"


class ManifestError(ValueError):
    """What is wrong and where: `path` is the dotted path of the offending field."""

    def __init__(self, kind: str, path: str, problem: str):
        super().__init__(f"{kind}: {path or '(top level)'}: {problem}")
        self.path = path


def closed(schema):
    """A copy of `schema` in which every object that lists its properties refuses any other."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def _crd_schema(kind: str) -> dict:
    crd = yaml.safe_load(gzip.open(SCHEMAS / f"ray.io_{kind.lower()}s.yaml.gz", "rt"))
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    return closed(version["schema"]["openAPIV3Schema"])


CRD_SCHEMAS = {kind: _crd_schema(kind) for kind in ("RayJob", "RayCluster")}


def _dotted(parts) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")


def _explain(kind: str, error: jsonschema.ValidationError) -> ManifestError:
    where = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {}))
        unknown = sorted(k for k in error.instance if k not in known)
        if unknown:
            return ManifestError(kind, _dotted([*where, unknown[0]]), "unknown field")
    return ManifestError(kind, _dotted(where), error.message.splitlines()[0])


def validate(doc: dict) -> None:
    """Raise ManifestError on an invalid manifest."""
    kind = doc.get("kind", "?")
    try:
        if str(doc.get("apiVersion", "")).startswith("ray.io/"):
            if kind not in CRD_SCHEMAS:
                raise ManifestError(kind, "kind", f"no KubeRay schema for kind {kind!r}")
            validator = jsonschema.Draft7Validator(CRD_SCHEMAS[kind])
            error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
            if error is not None:
                raise error
        else:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except jsonschema.ValidationError as error:
        raise _explain(kind, error) from None
