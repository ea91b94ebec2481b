"""Every manifest validates: built-in kinds with kubernetes-validate, RayJob/RayCluster against
KubeRay v1.7.0's CRD schemas with jsonschema; no secret is ever written into a manifest."""

import copy
import re
import shlex
from pathlib import Path

import pytest
import yaml
from manifest_validation import ManifestError, validate
from repo import ROOT

from attnlab.cli import main
from attnlab.tune.submit import render_rayjob

K8S = ROOT / "k8s"


def _manifests():
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name == "kustomization.yaml" or "schemas" in path.parts:
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield pytest.param(doc, id=f"{path.relative_to(K8S)}:{doc['kind']}/{doc['metadata']['name']}")


@pytest.mark.parametrize("doc", list(_manifests()))
def test_static_manifests_validate(doc):
    validate(doc)


def test_kustomizations_reference_existing_files():
    for kfile in K8S.rglob("kustomization.yaml"):
        for resource in yaml.safe_load(kfile.read_text()).get("resources", []):
            assert (kfile.parent / resource).exists(), f"{kfile}: {resource} missing"


@pytest.mark.parametrize("preset", ["smoke", "paper-detection", "paper"])
def test_submit_dry_run_renders_a_valid_rayjob(preset, capsys):
    assert (
        main(
            [
                "submit",
                "--preset",
                preset,
                "--image",
                "registry.example/attnlab:0.1.0",
                "--dry-run",
                "--gpus-per-trial",
                "2",
                "--workers",
                "4",
                "--namespace",
                "research",
            ]
        )
        == 0
    )
    doc = yaml.safe_load(capsys.readouterr().out)
    validate(doc)
    assert doc["spec"]["entrypoint"].startswith(f"attnlab sweep --preset {preset} --name ")
    worker = doc["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    assert (
        worker["replicas"] == 4
        and worker["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    )
    assert doc["metadata"]["namespace"] == "research" and doc["spec"]["backoffLimit"] >= 1
    # the shared volume by default; the job log ends with the sweep's JSON summary
    assert doc["spec"]["entrypoint"].endswith("--storage /shared/sweeps --format json")


def test_submit_puts_the_sweeps_where_storage_says(capsys):
    uri = "s3://sweeps/attnlab?endpoint_override=minio.storage:9000&scheme=http"
    assert main(["submit", "--preset", "smoke", "--image", "img", "--dry-run", "--storage", uri]) == 0
    entry = shlex.split(yaml.safe_load(capsys.readouterr().out)["spec"]["entrypoint"])
    assert entry[entry.index("--storage") + 1] == uri


def test_an_invalid_manifest_fails():
    bad = render_rayjob("x", "img", ["--preset", "smoke"])
    bad["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replicas"] = "four"
    with pytest.raises(ManifestError, match="four") as error:
        validate(bad)
    assert error.value.path == "spec.rayClusterSpec.workerGroupSpecs[0].replicas"


def _rayjob():
    return render_rayjob("x", "img", ["--preset", "smoke"])


def _misspell(doc: dict, path: str) -> dict:
    """`doc` with one more key at `path` (dotted, `[i]` for list items): a typo of a real field."""
    doc, node = copy.deepcopy(doc), None
    *parents, key = re.findall(r"[^.\[\]]+", path)
    node = doc
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[key] = "x"
    return doc


@pytest.mark.parametrize(
    "path",
    [
        "spec.rayClusterSpec.rayVersoin",
        "spec.entrypiont",
        "spec.rayClusterSpec.workerGroupSpecs.0.replicsa",
        "spec.rayClusterSpec.headGroupSpec.template.spec.containers.0.imagee",
    ],
)
def test_a_misspelt_rayjob_field_is_refused_by_its_path(path):
    with pytest.raises(ManifestError, match="unknown field") as error:
        validate(_misspell(_rayjob(), path))
    assert error.value.path == re.sub(r"\.(\d+)", r"[\1]", path)


def test_a_misspelt_field_of_a_builtin_kind_is_refused_by_its_path():
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {
            "replicas": 1,
            "selector": {},
            "template": {"spec": {"containers": [{"name": "c", "image": "i", "imagee": "j"}]}},
        },
    }
    with pytest.raises(ManifestError, match="unknown field") as error:
        validate(deployment)
    assert error.value.path == "spec.template.spec.containers[0].imagee"
    deployment["spec"]["template"]["spec"]["containers"][0].pop("imagee")
    validate(deployment)  # without the typo it is valid


def test_a_misspelt_raycluster_field_is_refused():
    cluster = next(d for d in _static_docs() if d["kind"] == "RayCluster")
    validate(cluster)
    with pytest.raises(ManifestError, match="unknown field") as error:
        validate(_misspell(cluster, "spec.headGroupSpec.rayStartParmas"))
    assert error.value.path == "spec.headGroupSpec.rayStartParmas"


def test_submit_refuses_bad_input_before_sending(capsys):
    assert main(["submit", "--preset", "smoke", "--dry-run"]) == 2
    assert "--image is required" in capsys.readouterr().err
    assert main(["submit", "--preset", "nope", "--image", "i", "--dry-run"]) == 2


def test_no_secret_is_written_into_a_manifest():
    secretish = re.compile(r"(PASSWORD|SECRET|TOKEN|ACCESS_KEY)", re.I)
    files = {
        p: p.read_text()
        for p in [*K8S.rglob("*.yaml"), *(ROOT / "docker").glob("*")]
        if "schemas" not in p.parts
    }
    files[Path("rendered-rayjob.yaml")] = yaml.safe_dump(render_rayjob("s", "img", ["--preset", "smoke"]))
    for path, text in files.items():
        if path.suffix == ".yaml":
            assert all(
                not isinstance(d, dict) or d.get("kind") != "Secret" for d in yaml.safe_load_all(text)
            ), path
        for line in text.splitlines():
            if secretish.search(line) and re.search(r"value:\s*\S", line):
                pytest.fail(f"{path}: a secret-looking value is embedded: {line.strip()}")


def _kustomize(overlay: Path, require_kubectl: bool = False) -> list[dict]:
    """Documents of `kubectl kustomize overlay`. Without kubectl on the machine, the overlay's
    resources are gathered recursively instead (patches unapplied: a weaker, still real check),
    unless the test needs kustomize's transformers (then a missing kubectl fails it)."""
    import shutil
    import subprocess

    kubectl = shutil.which("kubectl")
    assert kubectl or not require_kubectl, "this test needs kubectl (with its built-in kustomize) on PATH"
    if kubectl:
        out = subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True, text=True, check=True)
        return [d for d in yaml.safe_load_all(out.stdout) if d]
    docs = []
    for resource in yaml.safe_load((overlay / "kustomization.yaml").read_text()).get("resources", []):
        path = overlay / resource
        docs += (
            _kustomize(path, require_kubectl)
            if path.is_dir()
            else [d for d in yaml.safe_load_all(path.read_text()) if d]
        )
    return docs


@pytest.mark.parametrize("overlay", ["base", "overlays/gpu", "overlays/dev"])
def test_kustomize_output_validates(overlay):
    docs = _kustomize(K8S / overlay)
    kinds = {d["kind"] for d in docs}
    assert {
        "Namespace",
        "StatefulSet",
        "Deployment",
        "Service",
        "PersistentVolumeClaim",
        "RayCluster",
    } <= kinds
    for doc in docs:
        validate(doc)
    if overlay == "overlays/gpu":
        assert "RayJob" in kinds


def test_the_static_rayjob_is_what_submit_renders(capsys):
    static = K8S / "overlays" / "gpu" / "rayjob-sweep.yaml"
    header = static.read_text().splitlines()[0]
    argv = header.removeprefix("# Rendered by: attnlab ").split()
    assert argv[0] == "submit" and "--dry-run" in argv, header
    assert main(argv) == 0
    assert yaml.safe_load(capsys.readouterr().out) == yaml.safe_load(static.read_text())


def _static_docs():
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name != "kustomization.yaml" and "schemas" not in path.parts:
            yield from (d for d in yaml.safe_load_all(path.read_text()) if d)


def _pin(name: str) -> str:
    """The tested version of `name` (constraints.txt)."""
    return re.search(rf"^{re.escape(name)}==(\S+)$", (ROOT / "constraints.txt").read_text(), re.M).group(1)


def test_one_ray_version_everywhere():
    import ray

    from attnlab.tune.submit import RAY_VERSION

    pinned = _pin("ray")
    assert ray.__version__ == pinned == RAY_VERSION
    clusters = [d for d in _static_docs() if d["kind"] in ("RayCluster", "RayJob")]
    assert len(clusters) >= 2
    for doc in clusters:
        spec = doc["spec"].get("rayClusterSpec", doc["spec"])
        assert str(spec["rayVersion"]) == pinned, doc["metadata"]["name"]


def test_the_image_installs_the_pinned_project_as_a_non_root_user():
    text = (ROOT / "docker" / "Dockerfile").read_text()
    assert re.search(r"^FROM nvidia/cuda:[\w.-]*runtime", text, re.M)
    assert _pin("torch") and _pin("torchvision")
    assert "COPY --chown=attnlab:attnlab constraints.txt" in text
    assert "-c constraints.txt torch torchvision" in text and '-c constraints.txt ".[cluster]"' in text
    assert "python3.11 -m venv" in text
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"][
        "cluster"
    ]
    assert {re.split(r"[<>=]", e)[0] for e in extras} == {"mlflow[auth]", "psycopg2-binary", "boto3"}
    assert all(_pin(re.split(r"[\[<>=]", e)[0]) for e in extras)  # each has a tested version


def test_ray_token_auth_is_on_with_the_token_from_a_secret():
    rendered = render_rayjob("s", "img", ["--preset", "smoke"])
    specs = [rendered["spec"]["rayClusterSpec"]]
    specs += [
        d["spec"].get("rayClusterSpec", d["spec"])
        for d in _static_docs()
        if d["kind"] in ("RayCluster", "RayJob")
    ]
    for spec in specs:
        assert spec["authOptions"] == {"mode": "token", "secretName": "attnlab-ray-token"}


def test_kustomize_sets_the_image_of_every_ray_pod():
    """The gpu overlay's `images:` reaches the RayCluster's and the RayJob's nested pod templates."""
    docs = _kustomize(K8S / "overlays" / "gpu", require_kubectl=True)
    ray_images = [c["image"] for d in docs if d["kind"] in ("RayCluster", "RayJob") for c in _containers(d)]
    new = yaml.safe_load((K8S / "overlays" / "gpu" / "kustomization.yaml").read_text())["images"][0]
    assert len(ray_images) == 4
    assert set(ray_images) == {f"{new['newName']}:{new['newTag']}"}


def _containers(doc: dict) -> list[dict]:
    spec = doc["spec"].get("rayClusterSpec", doc["spec"])
    groups = [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


def test_submit_without_a_cluster_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert main(["submit", "--preset", "smoke", "--image", "registry.example/attnlab:0.1.0"]) == 2
    err = capsys.readouterr().err
    assert "no Kubernetes configuration" in err and "--dry-run" in err


def _pod_specs(doc: dict) -> list[dict]:
    if doc["kind"] in ("Deployment", "StatefulSet"):
        return [doc["spec"]["template"]["spec"]]
    if doc["kind"] in ("RayCluster", "RayJob"):
        spec = doc["spec"].get("rayClusterSpec", doc["spec"])
        return [g["template"]["spec"] for g in [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])]]
    return []


def test_every_pod_runs_as_non_root_with_requests_and_limits():
    docs = [*_static_docs(), render_rayjob("s", "img", ["--preset", "smoke"])]
    pods = [pod for doc in docs for pod in _pod_specs(doc)]
    assert len(pods) >= 6
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        for container in pod["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert (
                {"cpu", "memory"}
                <= set(container["resources"]["requests"])
                <= set(container["resources"]["limits"])
            )


def test_a_local_sweep_file_travels_inline_with_the_job(tmp_path, capsys):
    """`submit --config FILE` needs no copy of FILE in the image: the validated sweep is the entrypoint's."""
    from attnlab.tune.sweep_config import load_sweep

    (tmp_path / "mine.yaml").write_text(
        "name: mine\nmax_epochs: 2\ngrid:\n  - task: segmentation\n"
        "    specs: ['0010', deform]\n    preset: tiny\n"
    )
    assert main(["submit", "--config", str(tmp_path / "mine.yaml"), "--image", "img", "--dry-run"]) == 0
    doc = yaml.safe_load(capsys.readouterr().out)
    validate(doc)
    argv = shlex.split(doc["spec"]["entrypoint"])
    assert (
        argv[:3] == ["attnlab", "sweep", "--config-json"] and str(tmp_path) not in doc["spec"]["entrypoint"]
    )
    assert argv[argv.index("--name") + 1] == "mine" and argv[argv.index("--storage") + 1] == "/shared/sweeps"
    inline = load_sweep(None, None, "mine", argv[3])  # what the cluster's `attnlab sweep` parses
    assert inline == load_sweep(None, str(tmp_path / "mine.yaml"), None)
    assert [t.trial_key for t in inline.trials()] == ["segmentation-0010-s0", "segmentation-deform-s0"]


def test_a_bad_inline_config_is_a_clear_error(capsys):
    assert main(["sweep", "--config-json", "{not json", "--name", "x"]) == 2
    assert "--config-json is not valid JSON" in capsys.readouterr().err
