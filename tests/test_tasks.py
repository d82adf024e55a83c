"""tasks.py (standard library only): how `python3 tasks.py test` calls pytest."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tasks():
    spec = importlib.util.spec_from_file_location("rmlm_tasks", ROOT / "tasks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_suite_runs_one_worker_per_core_with_whole_files(monkeypatch):
    tasks = _tasks()
    monkeypatch.setattr(tasks, "_cores", lambda: 2)
    assert tasks._pytest_args(["-q"]) == ["-n", "2", "--dist", "loadfile", "-q"]
    assert tasks._pytest_args([]) == ["-n", "2", "--dist", "loadfile", "-q"]
    monkeypatch.setattr(tasks, "_cores", lambda: 64)
    assert tasks._pytest_args(["-q"])[:2] == ["-n", "4"]  # capped: memory, and module fixtures per worker


def test_the_callers_choice_and_single_tests_run_as_asked(monkeypatch):
    tasks = _tasks()
    monkeypatch.setattr(tasks, "_cores", lambda: 2)
    assert tasks._pytest_args(["-n", "0"]) == ["-n", "0"]
    assert tasks._pytest_args(["-p", "no:xdist"]) == ["-p", "no:xdist"]
    assert tasks._pytest_args(["tests/test_config.py::test_x"]) == ["tests/test_config.py::test_x"]
    monkeypatch.setattr(tasks, "_cores", lambda: 1)
    assert tasks._pytest_args(["-q"]) == ["-q"]


def test_cores_is_at_least_one():
    assert _tasks()._cores() >= 1
