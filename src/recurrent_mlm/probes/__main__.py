"""`python -m recurrent_mlm.probes {agreement,agreement-train,recall,memory} --model PATH ...`: parse the
probe's arguments, run it, print its table; results go to `--output_dir` as JSON, Markdown and a PNG."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli import UsageError, run_cli
from .common import add_dataclass_arguments, dataclass_from_namespace


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors as one usage line
        raise UsageError(f"{message} (see --help)")


def _probes():
    """name -> (arguments class, function, one-line description, printed part of the markdown)."""
    from .agreement import AgreementArgs, score_agreement
    from .agreement_train import AgreementTrainArgs, run_agreement_train
    from .memory import MemoryArgs, probe_memory
    from .recall import RecallArgs, run_recall

    return {
        "agreement": (AgreementArgs, score_agreement, "zero-shot subject-verb agreement of a masked LM"),
        "agreement-train": (AgreementTrainArgs, run_agreement_train,
                            "trained agreement probe: fine-tune on Linzen's prefixes, accuracy by attractors, ECE, seeds"),
        "recall": (RecallArgs, run_recall, "in-context associative recall (MQAR) trained from scratch per model"),
        "memory": (MemoryArgs, probe_memory, "how much context a model uses: windowed loss, prefix decay, LSTM norms"),
    }


def flag_tables() -> str:
    """Markdown tables of every probe's flags (default and help), as docs/probes.md shows them."""
    import dataclasses

    root = str(Path(__file__).resolve().parents[3]) + "/"
    out = []
    for name, (cls, _, _) in _probes().items():
        out.append(f"`{name}`:\n\n| flag | default | meaning |\n|---|---|---|")
        for f in dataclasses.fields(cls):
            if f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                default = None if f.default is dataclasses.MISSING else f.default
            if isinstance(default, list):
                default = " ".join(str(v) for v in default)
            if isinstance(default, str):
                default = default.replace(root, "")
            flag = f"--{f.name}" + (f" / --no-{f.name}" if default is True else "")
            shown = "" if default is None else f"`{default}`"
            out.append(f"| `{flag}` | {shown} | {f.metadata.get('help', '')} |")
        out.append("")
    return "\n".join(out)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m recurrent_mlm.probes", description=__doc__)
    commands = parser.add_subparsers(dest="probe", required=True, parser_class=_Parser)
    for name, (cls, _, description) in _probes().items():
        sub = commands.add_parser(name, help=description, description=description)
        add_dataclass_arguments(sub, cls)
    return parser


@run_cli
def main(argv: list[str] | None = None) -> int:
    namespace = build_parser().parse_args(argv)
    cls, function, _ = _probes()[namespace.probe]
    args = dataclass_from_namespace(cls, namespace)
    result = function(args, progress=lambda message: print(message, file=sys.stderr, flush=True))
    print(result.markdown())
    for _, path in sorted(result.files.items()):
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
