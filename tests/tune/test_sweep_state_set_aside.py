"""Tune's own state in a sweep's folder, when a full disk left it unusable: attnlab renames it
*.torn so the sweep starts a fresh Tune run (its trials resume from their own checkpoints),
instead of a restore that Tune abandons and then runs trials without their config."""

import json
from pathlib import Path

import pytest

from attnlab.tune.experiment import set_aside_torn_state

TUNE_FILES = ("tuner.pkl", "basic-variant-state-2026-12-01_10-00-00.json")


@pytest.fixture
def store(sweep_store):
    return sweep_store


def _files(store):
    return sorted(p.name for p in Path(store.path).iterdir())


def _write(store, names, state=None):
    for name in names:
        store.write_bytes(name, b"pickled")
    if state is not None:
        store.write_bytes("experiment_state-2026-12-01_10-00-00.json", state)


def test_a_new_sweep_has_nothing_to_set_aside(store):
    assert set_aside_torn_state(store) == []


def test_a_whole_experiment_state_is_kept(store):
    _write(store, TUNE_FILES, json.dumps({"trial_data": []}).encode())
    assert set_aside_torn_state(store) == []
    assert ".torn" not in " ".join(_files(store))


def test_an_experiment_state_cut_short_sets_tunes_state_aside(store):
    _write(store, TUNE_FILES, b'{"trial_data": [')
    moved = set_aside_torn_state(store)
    assert moved == sorted([*TUNE_FILES, "experiment_state-2026-12-01_10-00-00.json"])
    assert all(name.endswith(".torn") for name in _files(store))


def test_a_tuner_without_any_experiment_state_is_set_aside(store):
    """The disk filled before Tune first wrote its experiment state: Tuner.can_restore sees the
    tuner.pkl, but Tune's restore fails on the missing state and would start afresh."""
    _write(store, TUNE_FILES)
    assert set_aside_torn_state(store) == sorted(TUNE_FILES)
    assert _files(store) == sorted(f"{name}.torn" for name in TUNE_FILES)
