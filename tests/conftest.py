"""Shared fixtures: deterministic seeds, the machine's cores shared out among the suite's workers, the
host each test means, and what many files use: an MLflow store (`store`), a sweep's store on a path
and on a URI (`sweep_store`), the `attnlab` command as a user runs it (`cli`, tests/helpers/repo.py).

Tests live by the package they cover (tests/lightning_modules, pipeline, tune, attnlab, benchmarks);
helpers they share are modules in tests/helpers, importable by name (`from services import ...`).

The suite means a CPU: on a CUDA host the GPUs are hidden from it (and from every process it
starts: `attnlab`, Ray, Lightning's DDP ranks), so a test never changes meaning because a GPU is
there. Tests marked `cuda` mean a GPU: `pytest -m cuda` runs them with the GPUs visible, and
they skip cleanly on a host without CUDA.
"""

import functools
import os
import secrets
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch  # importing torch initialises no CUDA: CUDA_VISIBLE_DEVICES still counts below

from attnlab.tune.local_services import embedded_ray_environment

HELPERS = Path(__file__).resolve().parent / "helpers"
sys.path.insert(0, str(HELPERS))  # before any test module imports one

CUDA_MARK = "cuda"


def _selects_cuda(config) -> bool:
    expr = config.getoption("markexpr") or ""
    return CUDA_MARK in expr and f"not {CUDA_MARK}" not in expr


def _threads_per_worker() -> int:
    """This machine's cores shared out among the suite's processes (pytest-xdist workers)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return max(1, len(os.sched_getaffinity(0)) // workers)


def pytest_configure(config):
    if not _selects_cuda(config):
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before anything initialises CUDA
    # Never more compute threads than cores: two workers of two OpenMP threads each on 2 cores ran
    # a CamVid epoch in 320 s against 111 s at one thread each (their spin-waits fight). Every
    # process a test starts (`attnlab`, Ray, DDP ranks) inherits the budget.
    threads = _threads_per_worker()
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)
    # Every Ray the suite starts (in this process, in `attnlab` subprocesses, in `ray start`) keeps
    # its sessions in a temp dir of the suite's own, never /tmp/ray, where another Ray may live.
    # Short on purpose: Ray's socket paths must stay under 107 characters.
    config._ray_tmpdir = os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="ray-")
    # A new local Ray (>= 2.60) turns on token auth and, finding no token, writes one to
    # ~/.ray/auth_token: the suite brings its own in the environment, so the home stays untouched.
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
    # The data preflight remembers the folders it scanned (pipeline/data/preflight.py): in the
    # suite's own folder, never the user's ~/.cache.
    config._attnlab_cache = os.environ["ATTNLAB_CACHE"] = tempfile.mkdtemp(prefix="attnlab-cache-")
    # The suite is a process that starts embedded Rays, like `attnlab`: it sets what the command sets
    # at its start, before any test module imports Ray, so each of them stays on loopback.
    os.environ.update(embedded_ray_environment(None))


def pytest_unconfigure(config):
    for folder in ("_ray_tmpdir", "_attnlab_cache"):
        if getattr(config, folder, None):
            shutil.rmtree(getattr(config, folder), ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    _slow_files_first(items)
    if torch.cuda.is_available():
        return
    why = "needs CUDA (run `pytest -m cuda` on a GPU host)"
    if not _selects_cuda(config) and os.environ.get("CUDA_VISIBLE_DEVICES") == "":
        why = "the CPU suite hides GPUs; `pytest -m cuda` runs the GPU tests"
    for item in items:
        if CUDA_MARK in item.keywords:
            item.add_marker(pytest.mark.skip(reason=why))


def _slow_files_first(items) -> None:
    """Files with slow tests start first: `make test` hands whole files to its workers in this
    order (pytest-xdist, --dist loadfile --no-loadscope-reorder; xdist's own order is by test
    count), and a long file picked up last would run alone at the end."""
    slow = {item.path for item in items if "slow" in item.keywords}
    items.sort(key=lambda item: item.path not in slow)  # stable: the order within stays


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_detection(tmp_path_factory):
    from attnlab.pipeline.tasks.registry import make_tiny

    return make_tiny("detection", tmp_path_factory.mktemp("data") / "coco")


@pytest.fixture(scope="session")
def tiny_segmentation(tmp_path_factory):
    from attnlab.pipeline.tasks.registry import make_tiny

    return make_tiny("segmentation", tmp_path_factory.mktemp("data") / "cityscapes")


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty working directory with no inherited MLflow settings."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


@pytest.fixture(scope="module")
def local_ray(request):
    """A Ray of the module's own (address="local": never a cluster already on the machine), in a
    temp dir of its own, shut down afterwards."""
    import ray

    temp = tempfile.mkdtemp(prefix="ray-")
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        _temp_dir=temp,
        # Workers import tests/helpers' modules and the trainables the test module defines.
        runtime_env={"env_vars": {"PYTHONPATH": f"{HELPERS}:{Path(request.module.__file__).parent}"}},
    )
    yield
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


@dataclass
class MlflowStore:
    """A sqlite MLflow store in the test's own folder (artifacts beside it)."""

    folder: Path

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.folder / 'mlflow.db'}"

    @functools.cached_property
    def client(self):
        from mlflow.tracking import MlflowClient

        return MlflowClient(self.uri)

    def experiment(self, name: str) -> str:
        """A new experiment's id."""
        return self.client.create_experiment(name, artifact_location=(self.folder / "a" / name).as_uri())


@pytest.fixture
def store(tmp_path) -> MlflowStore:
    return MlflowStore(tmp_path)


@pytest.fixture(params=["path", "uri"])
def sweep_store(request, tmp_path):
    """A sweep's store (`SweepStore`) on a local path and, as s3:// would be, on a file:// URI."""
    from attnlab.tune.storage import SweepStore

    root = str(tmp_path / "sweeps") if request.param == "path" else (tmp_path / "sweeps").as_uri()
    return SweepStore(root, "s")


@pytest.fixture
def cli():
    """`attnlab ARGS` as a user's shell runs it: cli(args, cwd, timeout=900, **env) -> CompletedProcess."""
    from repo import run_attnlab

    return run_attnlab
