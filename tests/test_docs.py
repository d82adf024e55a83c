"""The README's generated content is current."""

import subprocess
import sys

from tests.conftest import REPO_ROOT, subprocess_env


def test_readme_parameter_table_is_current():
    done = subprocess.run([sys.executable, "scripts/parameter_table.py", "--check"], cwd=REPO_ROOT,
                          env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
