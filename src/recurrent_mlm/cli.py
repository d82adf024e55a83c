"""Command-line plumbing shared by the two pipelines (`run_pretraining.py`, `run_glue.py`) and the package's
other commands: one-line usage errors, arguments declared once as dataclasses, recipe files, logging,
trackers, process counts and output folders.

Arguments are dataclasses whose fields carry their help, group and flag spellings in `metadata`; a
`DataclassArgumentParser` turns one into an `argparse` parser (grouped `--help`, defaults shown only where
there is one, no abbreviations) and back into the dataclass. Like `transformers.HfArgumentParser`, a run can
be given as a YAML or JSON file (`python run_pretraining.py recipe.yaml`); flags after the file override its
values. Unlike it, the flags keep the exact spellings our scripts always had (aliases, `--no-X` negations,
tri-state booleans), and a misspelled key in a recipe is refused with the nearest field name.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import json
import logging
import os
import sys
import types
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


class UsageError(Exception):
    """Bad input from the user: printed as one line (the problem and the fix), exit code 2, no traceback."""


def run_cli(main: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a command's `main` so a `UsageError` ends the process with one line on stderr and exit code 2,
    and Ctrl-C with one line and exit code 130 (no traceback either way)."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UsageError as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted.", file=sys.stderr, flush=True)
            sys.exit(130)

    return wrapper


# ----------------------------------------------------------------------------------------------------------
# Dataclass arguments
# ----------------------------------------------------------------------------------------------------------
def arg(default: Any = None, help: str = "", *, group: str = "", flags: Iterable[str] = (), **extra: Any) -> Any:
    """A dataclass field that is also a command-line flag.

    `flags` are the option strings (default `--<name>`); `extra` may set `choices`, `metavar`, `type` (a parser
    for one value), `nargs`, `required=True` (checked after a recipe file and the flags are merged), and
    `negatable=False` (a `bool | None` or default-True bool without a `--no-X` form is a plain switch)."""
    metadata = {"help": help, "group": group, "flags": tuple(flags), **extra}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """(inner type, whether None is allowed) for `X | None` / `Optional[X]`."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0], True
    return annotation, False


def _metavar(name: str, parse: Any) -> str:
    if parse is int:
        return "N"
    if parse is float:
        return "X"
    if name.endswith(("_dir", "_file", "_path", "name_or_path")) or name in ("config_name", "tokenizer_name"):
        return "PATH"
    return "VALUE"


class _HelpFormatter(argparse.HelpFormatter):
    """Shows `(default: X)` only for flags that have a real default (not None, not False, not empty)."""

    def __init__(self, prog: str):
        super().__init__(prog, max_help_position=38, width=min(120, _terminal_width()))

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or default is None
            or default is False
            or default == []
            or default is argparse.SUPPRESS
            or isinstance(action, (argparse._StoreTrueAction, argparse._HelpAction))
        ):
            return text
        shown = " ".join(str(v) for v in default) if isinstance(default, (list, tuple)) else default
        if isinstance(action, argparse.BooleanOptionalAction):
            shown = "on" if default else "off"
        return f"{text} (default: {str(shown).replace('%', '%%')})"


def _terminal_width() -> int:
    try:
        return os.get_terminal_size().columns
    except OSError:
        return 110


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are our one-line usage errors (exit code 2, no usage dump)."""

    def error(self, message: str):
        raise UsageError(f"{message} (see --help)")


RECIPE_SUFFIXES = (".yaml", ".yml", ".json")


class DataclassArgumentParser:
    """An `argparse` front end for an arguments dataclass (see the module docstring)."""

    def __init__(self, dataclass_type: type, *, prog: str | None = None, description: str = "", epilog: str = ""):
        self.dataclass_type = dataclass_type
        self.fields = {f.name: f for f in dataclasses.fields(dataclass_type) if f.init and not f.name.startswith("_")}
        self.hints = typing.get_type_hints(dataclass_type)
        self.parser = _Parser(
            prog=prog,
            usage=f"{prog or '%(prog)s'} [RECIPE.yaml] [--flag value ...]",
            description=description,
            epilog=epilog,
            formatter_class=_HelpFormatter,
            allow_abbrev=False,
        )
        groups: dict[str, argparse._ArgumentGroup] = {}
        for f in self.fields.values():
            title = f.metadata.get("group", "")
            target = self.parser
            if title:
                if title not in groups:
                    groups[title] = self.parser.add_argument_group(title)
                target = groups[title]
            self._add(target, f)

    def _add(self, target, f: dataclasses.Field) -> None:
        meta = f.metadata
        flags = list(meta.get("flags") or (f"--{f.name}",))
        kwargs: dict[str, Any] = {"dest": f.name, "help": meta.get("help", "")}
        kwargs["default"] = None if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING else (
            f.default if f.default is not dataclasses.MISSING else f.default_factory()
        )
        annotation, optional = _unwrap_optional(self.hints[f.name])
        if annotation is bool:
            if kwargs["default"] is False and not optional:
                kwargs["action"] = "store_true"
            elif meta.get("negatable", True):
                kwargs["action"] = argparse.BooleanOptionalAction
            else:
                kwargs["action"] = "store_true"
            target.add_argument(*flags, **kwargs)
            return
        if typing.get_origin(annotation) is list:
            (inner,) = typing.get_args(annotation) or (str,)
            kwargs["nargs"] = meta.get("nargs", "+")
            kwargs["type"] = meta.get("type", inner)
        else:
            kwargs["type"] = meta.get("type", annotation if annotation in (int, float, str) else str)
            if "nargs" in meta:
                kwargs["nargs"] = meta["nargs"]
        for key in ("choices", "metavar"):
            if key in meta:
                kwargs[key] = meta[key]
        if "metavar" not in kwargs and "choices" not in kwargs:
            kwargs["metavar"] = _metavar(f.name, kwargs["type"])
        if not flags[0].startswith("-"):  # a positional argument: its name is the field's
            del kwargs["dest"]
            flags = [f.name]
        target.add_argument(*flags, **kwargs)

    # -- parsing -------------------------------------------------------------------------------------------
    def parse(self, argv: list[str] | None = None):
        """The dataclass from `argv` (default `sys.argv[1:]`). A first argument ending in .yaml/.yml/.json is a
        recipe whose values the following flags override. The instance remembers which fields were given (in
        the recipe or as flags) in its `given_fields` attribute."""
        argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
        values: dict[str, Any] = {}
        given: set[str] = set()
        if argv and not argv[0].startswith("-") and argv[0].lower().endswith(RECIPE_SUFFIXES):
            values = self.read_recipe(argv[0])
            given |= set(values)
            argv = argv[1:]
        self.parser.set_defaults(**self._file_defaults(values))
        try:
            namespace = self.parser.parse_args(argv)
        finally:
            self.parser.set_defaults(**{name: self._field_default(name) for name in values})
        given |= self._given_on_command_line(argv)
        missing = [
            name for name, f in self.fields.items() if f.metadata.get("required") and getattr(namespace, name) in (None, [])
        ]
        if missing:
            flags = ", ".join(self._flag(name) for name in missing)
            raise UsageError(f"the following arguments are required: {flags} (see --help)")
        instance = self.dataclass_type(**{name: getattr(namespace, name) for name in self.fields})
        instance.given_fields = frozenset(given)
        return instance

    def read_recipe(self, path: str | os.PathLike) -> dict[str, Any]:
        """The fields set by a YAML or JSON recipe file, checked against the dataclass."""
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"recipe file {path} does not exist; give a .yaml or .json file of arguments.")
        try:
            text = path.read_text(encoding="utf-8")
            if path.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                import yaml

                data = yaml.safe_load(text)
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise UsageError(f"cannot read the recipe {path}: {str(err).splitlines()[0]}") from None
        except Exception as err:  # yaml.YAMLError and friends
            raise UsageError(f"cannot read the recipe {path}: {str(err).splitlines()[0]}") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise UsageError(f"the recipe {path} must map argument names to values (a YAML/JSON object).")
        out = {}
        for key, value in data.items():
            name = self._field_for(str(key))
            if name is None:
                near = difflib.get_close_matches(str(key).lstrip("-"), list(self.fields), n=1)
                hint = f"; did you mean {near[0]!r}?" if near else "; see --help for the names."
                raise UsageError(f"the recipe {path} sets {key!r}, which is not an argument{hint}")
            out[name] = self._coerce(name, value, path)
        return out

    def _field_for(self, key: str) -> str | None:
        key = key.lstrip("-").replace("-", "_")
        if key in self.fields:
            return key
        for name, f in self.fields.items():  # aliases such as learning_rate for learning_rates
            if any(flag.lstrip("-").replace("-", "_") == key for flag in f.metadata.get("flags", ())):
                return name
        return None

    def _coerce(self, name: str, value: Any, path: Path) -> Any:
        annotation, optional = _unwrap_optional(self.hints[name])
        if value is None:
            return None
        meta = self.fields[name].metadata
        try:
            if typing.get_origin(annotation) is list:
                (inner,) = typing.get_args(annotation) or (str,)
                parse = meta.get("type", inner)
                items = value if isinstance(value, list) else [value]
                return [parse(v) if not isinstance(v, bool) else v for v in items]
            if annotation is bool:
                if isinstance(value, bool):
                    return value
                raise ValueError(f"{value!r} is not true or false")
            parse = meta.get("type", annotation if annotation in (int, float, str) else str)
            if parse is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(f"{value!r} is not a whole number")
            result = parse(value if not isinstance(value, (int, float)) or parse is not str else str(value))
        except (TypeError, ValueError) as err:
            raise UsageError(f"the recipe {path}: {name}: {err}") from None
        choices = meta.get("choices")
        if choices is not None and result not in choices:
            raise UsageError(f"the recipe {path}: {name} is {result!r}; choose one of {', '.join(map(str, choices))}.")
        return result

    def _file_defaults(self, values: dict[str, Any]) -> dict[str, Any]:
        return dict(values)

    def _field_default(self, name: str) -> Any:
        f = self.fields[name]
        if f.default is not dataclasses.MISSING:
            return f.default
        if f.default_factory is not dataclasses.MISSING:
            return f.default_factory()
        return None

    def _given_on_command_line(self, argv: list[str]) -> set[str]:
        given = set()
        for action in self.parser._actions:
            for option in action.option_strings:
                if any(token == option or token.startswith(option + "=") for token in argv):
                    given.add(action.dest)
        return given

    def _flag(self, name: str) -> str:
        return (self.fields[name].metadata.get("flags") or (f"--{name}",))[0]

    def option_strings(self) -> set[str]:
        """Every flag the parser accepts (for documentation checks)."""
        return {s for action in self.parser._actions for s in action.option_strings}

    def format_help(self) -> str:
        return self.parser.format_help()


def given(args: Any, name: str) -> bool:
    """Whether `name` was set explicitly (a recipe or a flag; any non-default value for a Python caller)."""
    fields = getattr(args, "given_fields", None)
    if fields is not None:
        return name in fields
    f = next(f for f in dataclasses.fields(args) if f.name == name)
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    return getattr(args, name) != default


def to_jsonable(args: Any, *, secret: Iterable[str] = ("hub_token",)) -> dict[str, Any]:
    """The arguments as a JSON-ready dict, without secrets."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(args) if f.name not in set(secret)}


def write_recipe(args: Any, path: str | os.PathLike, *, only_given: bool = False) -> Path:
    """Write `args` as a YAML recipe that `parse` reads back to the same arguments (no secrets)."""
    import yaml

    values = to_jsonable(args)
    if only_given:
        values = {k: v for k, v in values.items() if given(args, k)}
    path = Path(path)
    path.write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------------------------
# Checks shared by both pipelines
# ----------------------------------------------------------------------------------------------------------
def check_output_dir(path: str | os.PathLike, overwrite: bool, allowed: Iterable[str] = ()) -> Path:
    """Refuse to write into an existing non-empty folder unless asked to (names in `allowed` do not count), and
    refuse a folder that cannot be created or written, before any work starts."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--output_dir {path} is a file; give a folder path.")
    if path.is_dir() and not overwrite:
        contents = [p.name for p in path.iterdir() if p.name not in set(allowed)]
        if contents:
            raise UsageError(
                f"--output_dir {path} exists and is not empty; pass --overwrite_output_dir to replace its "
                "contents, or choose another folder."
            )
    check_writable(path)
    return path


def check_writable(path: str | os.PathLike, flag: str = "--output_dir") -> None:
    """Refuse a folder that cannot be created or written to (found now, not after an hour of training)."""
    path = Path(path).resolve()
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{flag} {path}: {existing} is a file, so the folder cannot be created; choose another path.")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "is not writable" if existing == path else f"cannot be created ({existing} is not writable)"
        raise UsageError(f"{flag} {path} {what}; choose a folder you can write to.")


def check_finite(name: str, value: float | None, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> None:
    """`--name` must be a finite number inside [low, high] (open ends where asked)."""
    import math

    if value is None:
        return
    if not math.isfinite(value):
        raise UsageError(f"--{name} must be a finite number, got {value}.")
    if low is not None and (value < low or (low_open and value == low)):
        bound = f"> {low:g}" if low_open else f">= {low:g}"
        raise UsageError(f"--{name} must be {bound}, got {value:g}.")
    if high is not None and (value > high or (high_open and value == high)):
        bound = f"< {high:g}" if high_open else f"<= {high:g}"
        raise UsageError(f"--{name} must be {bound}, got {value:g}.")


def check_trackers(report_to: list[str] | str | None) -> list[str]:
    """Normalise `--report_to` and check each tracker is known to Accelerate and installed (a tracker that is
    missing would otherwise log nothing, silently, until the run ends)."""
    if report_to is None:
        return []
    names = [report_to.lower()] if isinstance(report_to, str) else [name.lower() for name in report_to]
    if names in (["none"], []):
        return []
    if "none" in names:
        raise UsageError("--report_to none cannot be combined with other trackers.")
    if names == ["all"]:
        return ["all"]
    from accelerate.utils import LoggerType

    known = {t.value for t in LoggerType}
    for name in names:
        if name not in known:
            raise UsageError(f"--report_to {name!r} is not an Accelerate tracker; choose from {', '.join(sorted(known))}.")
    import accelerate.utils as accelerate_utils

    for name in names:
        check = getattr(accelerate_utils, f"is_{name}_available", None)
        if check is not None and not check():
            package = {"comet_ml": "comet-ml", "aim": "aim", "dvclive": "dvclive"}.get(name, name)
            extra = " (pip install 'recurrent-mlm[tensorboard]')" if name == "tensorboard" else ""
            raise UsageError(f"--report_to {name} needs the {package} package: pip install {package}{extra}.")
    return names


def check_hub_arguments(args: Any, *, default_repo: str | None = None) -> None:
    """With `push_to_hub`: a repo id, not offline, and a token that can write there — checked before training."""
    if not getattr(args, "push_to_hub", False):
        return
    repo = args.hub_model_id or default_repo
    if not repo:
        raise UsageError("--push_to_hub needs --hub_model_id (e.g. your-name/recurrent-bert-mini).")
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:  # read from HF_HUB_OFFLINE when huggingface_hub was imported
        raise UsageError("--push_to_hub with HF_HUB_OFFLINE set would fail after training; unset it or drop --push_to_hub.")
    from .hub import HubPushError, check_push_access

    try:  # a typo in the repo id or a bad token fails now, not after training
        args.hub_model_id = check_push_access(repo, token=args.hub_token)
    except HubPushError as err:
        raise UsageError(str(err)) from None


# ----------------------------------------------------------------------------------------------------------
# Processes and logging
# ----------------------------------------------------------------------------------------------------------
def launched_world_size() -> int:
    """Processes started by the launcher (torchrun / accelerate launch / MPI), before Accelerate looks."""
    for name in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 1


def has_accelerator_device() -> bool:
    import torch

    accelerator_api = getattr(torch, "accelerator", None)
    if accelerator_api is not None and hasattr(accelerator_api, "is_available"):
        return bool(accelerator_api.is_available())
    return torch.cuda.is_available()


def single_process_from_cpu_launch() -> bool:
    """`accelerate launch --cpu --num_processes N>1` without MPI sets MASTER_ADDR but starts one process."""
    env = os.environ
    return env.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true") and "MASTER_ADDR" in env and "WORLD_SIZE" not in env


def check_process_count(accelerator, logger: logging.Logger) -> None:
    """Refuse a launch whose processes Accelerate did not all join (they would overwrite each other's output),
    and warn when `accelerate launch --cpu` asked for several processes but started one."""
    launched = launched_world_size()
    if launched > 1 and accelerator.num_processes != launched:
        raise UsageError(
            f"{launched} processes were launched but Accelerate set up {accelerator.num_processes}; they would "
            "overwrite each other's output. Check the launcher's --num_processes and the Accelerate config."
        )
    if launched == 1 and single_process_from_cpu_launch():
        logger.warning(
            "`accelerate launch --cpu` asked for several processes but only this one runs (Accelerate needs an MPI "
            "hostfile for more, and the launcher's arguments could not be read); for N data-parallel CPU processes "
            "use `accelerate launch --multi_gpu --num_processes N` (gloo on CPU) or `torchrun --nproc_per_node N`."
        )


def cpu_launch_processes() -> int:
    """How many processes `accelerate launch --cpu --num_processes N` asked for when it started only this one.

    Accelerate 1.x starts CPU processes itself only through MPI (`--mpirun_hostfile`); without it, `--cpu
    --num_processes N` runs one process (it sets MASTER_ADDR for N but no WORLD_SIZE). The request is read
    back from the launcher's command line. Returns 1 when there is nothing to make up for (any other
    launcher, one process asked for, several machines, or the launcher's arguments cannot be read).
    """
    env = os.environ
    if env.get("ACCELERATE_USE_CPU", "").lower() not in ("1", "true") or "MASTER_ADDR" not in env:
        return 1
    if any(name in env for name in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")):
        return 1
    try:
        import psutil
        from accelerate.commands.config.config_args import default_config_file, load_config_from_file
        from accelerate.commands.launch import launch_command_parser

        tokens = psutil.Process(os.getppid()).cmdline()
        start = next(
            i + 1 for i, token in enumerate(tokens) if token == "launch" or token.endswith("accelerate.commands.launch")
        )
        args, _ = launch_command_parser().parse_known_args(tokens[start:])
        num_processes, num_machines = args.num_processes, args.num_machines
        config_file = args.config_file or (default_config_file if os.path.isfile(default_config_file) else None)
        if config_file and (num_processes is None or num_machines is None):
            config = load_config_from_file(config_file)
            num_processes = config.num_processes if num_processes is None else num_processes
            num_machines = config.num_machines if num_machines is None else num_machines
    except Exception:  # not launched by `accelerate launch`, or a launcher we do not know how to read
        return 1
    if not num_processes or num_processes < 2 or (num_machines or 1) > 1:
        return 1
    return int(num_processes)


def relaunch_cpu_processes(script: str | os.PathLike, argv: list[str] | None) -> int | None:
    """For a script's `main(argv)`: start the N CPU processes that `accelerate launch --cpu --num_processes N`
    asked for (see `cpu_launch_processes`) through `torch.distributed.run` on this machine with the command
    line's arguments, wait, and return the exit code. Returns None (and starts nothing) when `main` was called
    with explicit `argv` (from Python, not a command line) or the launcher already started the right number of
    processes. Each process then sets up Accelerate on CPU with gloo, as `--multi_gpu --num_processes N` would.
    """
    import subprocess

    if argv is not None:
        return None
    argv = sys.argv[1:]
    processes = cpu_launch_processes()
    if processes < 2:
        return None
    print(
        f"accelerate launch --cpu started 1 process of the {processes} asked for (Accelerate needs MPI for more); "
        f"starting {processes} data-parallel CPU processes with torch.distributed.run.",
        file=sys.stderr,
        flush=True,
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_ADDR", "MASTER_PORT")}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    return subprocess.run([*command, str(script), *argv], env=env).returncode


def setup_logging(accelerator, *loggers: logging.Logger) -> None:
    """Our loggers at INFO on the main process (ERROR elsewhere); other libraries at WARNING on the local main
    process and ERROR on the others, so one process speaks."""
    import datasets
    import transformers

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S", level=logging.WARNING)
    level = logging.INFO if accelerator.is_main_process else logging.ERROR
    for logger in (*loggers, logging.getLogger("recurrent_mlm")):
        logger.setLevel(level)
    if accelerator.is_local_main_process:
        datasets.utils.logging.set_verbosity_warning()
        transformers.utils.logging.set_verbosity_warning()
    else:
        datasets.utils.logging.set_verbosity_error()
        datasets.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()


def reset_accelerate_state() -> None:
    """Forget the process-wide Accelerate singletons, so that the next `Accelerator` of this process may use
    other settings (one Python process running several pipelines one after the other: the study, tests).
    Leaves a distributed process group alone."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()


def portable_path(value: Any) -> Any:
    """A path as it can be shown on the Hub: relative to the working folder when inside it, else the last two
    components (no home folders or cluster paths). Lists are mapped; other values pass through."""
    if isinstance(value, list):
        return [portable_path(v) for v in value]
    if not isinstance(value, str) or not os.path.isabs(value):
        return value
    path = Path(value)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(Path("...", *path.parts[-2:]))


def quote_command(argv: Iterable[str], secret_flags: Iterable[str] = ("--hub_token",)) -> str:
    """A shell-quoted command line with the values of secret flags replaced by ***."""
    import shlex

    secret = set(secret_flags)
    out, skip = [], False
    for arg in argv:
        if skip:
            out.append("***")
            skip = False
        elif arg in secret:
            out.append(arg)
            skip = True
        elif any(arg.startswith(flag + "=") for flag in secret):
            out.append(arg.split("=", 1)[0] + "=***")
        else:
            out.append(shlex.quote(arg))
    return " ".join(out)


__all__ = [
    "UsageError",
    "run_cli",
    "arg",
    "DataclassArgumentParser",
    "given",
    "to_jsonable",
    "write_recipe",
    "check_output_dir",
    "check_writable",
    "check_finite",
    "check_trackers",
    "check_hub_arguments",
    "check_process_count",
    "launched_world_size",
    "has_accelerator_device",
    "cpu_launch_processes",
    "relaunch_cpu_processes",
    "setup_logging",
    "reset_accelerate_state",
    "quote_command",
    "portable_path",
]
