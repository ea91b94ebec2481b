"""The distribution installs under one namespace: everything imports as `attnlab.*`, and nothing
else lands at the top of site-packages (PyPI has distributions named `pipeline` and `tune`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile

from repo import ROOT

FOLDERS = {"attnlab": "attnlab", "lightning_modules": "attnlab.lightning_modules"}
FOLDERS |= {"pipeline": "attnlab.pipeline", "tune": "attnlab.tune"}


def test_every_package_folder_is_listed_under_its_attnlab_name():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = set()
    for folder, name in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join([name, *parts]))
    assert sorted(setuptools["packages"]) == sorted(found)
    assert setuptools["package-dir"] == {name: folder for folder, name in FOLDERS.items()}


def test_the_wheel_holds_only_attnlab(tmp_path):
    """What `pip install .` puts in site-packages: the wheel's files, all under attnlab/."""
    source = tmp_path / "source"  # a copy: building leaves build/ and *.egg-info where it runs
    for name in FOLDERS:
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*pip, "-w", str(tmp_path), "."], cwd=source, check=True, capture_output=True)
    (wheel,) = tmp_path.glob("attnlab-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"attnlab"}, tops
    assert {
        "attnlab/tune/sweep_run.py",
        "attnlab/pipeline/training/run.py",
        "attnlab/pipeline/tracking/runs.py",
        "attnlab/lightning_modules/backbone.py",
    } <= set(names)
    top_level = [n for n in names if n.endswith("top_level.txt")]
    assert not top_level or zipfile.ZipFile(wheel).read(top_level[0]).decode().split() == ["attnlab"]


def test_installed_names_import_and_the_bare_ones_do_not(tmp_path):
    """From a folder outside the checkout (so the checkout itself is not on sys.path)."""
    code = (
        "import importlib.util as u\n"
        "import attnlab.tune.sweep_run, attnlab.pipeline.training.run, attnlab.lightning_modules\n"
        "print([m for m in ('tune', 'pipeline', 'lightning_modules') if u.find_spec(m)])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr
