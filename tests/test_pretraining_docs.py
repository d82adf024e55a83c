"""docs/pretraining.md stays in step with the script: every flag documented, the demo command is the recipe's."""

from __future__ import annotations

import re
import shlex

import run_pretraining
from recurrent_mlm.recipes import pretraining_argv
from tests.conftest import REPO_ROOT

DOC = REPO_ROOT / "docs" / "pretraining.md"


def test_every_flag_is_documented():
    text = DOC.read_text(encoding="utf-8")
    flags = {s for s in run_pretraining.build_parser().option_strings() if s.startswith("--")}
    flags = {f for f in flags if f != "--help" and not f.startswith("--no-")}  # --no-X: the negation of a documented --X
    missing = sorted(flag for flag in flags if not re.search(re.escape(flag) + r"(?![\w-])", text))
    assert not missing, f"undocumented flags: {missing}"


def test_the_documented_demo_command_is_the_recipe():
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    command = " ".join(line.rstrip("\\").strip() for line in block.splitlines() if not line.startswith("#"))
    argv = shlex.split(command)
    assert argv[:2] == ["python", "run_pretraining.py"]
    assert argv[2:] == pretraining_argv("outputs/demo-pretrain")
