"""docs/probes.md stays in step with the probes: its flag tables are what the argument dataclasses say, and
every flag of the command line is among them."""

from __future__ import annotations

import re

from recurrent_mlm.probes.__main__ import build_parser, flag_tables
from tests.conftest import REPO_ROOT

DOC = REPO_ROOT / "docs" / "probes.md"


def test_flag_tables_are_current():
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"<!-- flags:start -->\n(.*)<!-- flags:end -->", text, re.S).group(1)
    assert block == flag_tables(), "regenerate the tables with recurrent_mlm.probes.__main__.flag_tables()"


def test_every_command_line_flag_is_documented():
    tables = flag_tables()
    subparsers = next(a for a in build_parser()._actions if a.dest == "probe").choices
    for name, parser in subparsers.items():
        flags = {s for action in parser._actions for s in action.option_strings if s.startswith("--") and s != "--help"}
        missing = sorted(f for f in flags if f"`{f}" not in tables and f" {f}`" not in tables)
        assert not missing, (name, missing)
