"""`python -m surnn.train`: one flag per `TrainConfig` field, generated from the dataclass."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing

import yaml

from surnn.train_config import TrainConfig

EXAMPLES = """examples:
  python -m surnn.train --task adding --hidden-size 64 --epochs 3
  python -m surnn.train --task delayed_recall --gate event --sparsity-lambda 0.01
  python -m surnn.train --task listops --task-option min_length=100 --task-option max_length=300 \\
      --task-option num_train=2000 --checkpoint-dir runs/listops   # rerun to resume

Metrics of each evaluation go to stderr; the last line on stdout is the final JSON result.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m surnn.train", description="Train a selective-update RNN on one task.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    hints = typing.get_type_hints(TrainConfig)
    comments = _field_comments()
    for f in dataclasses.fields(TrainConfig):
        if f.name == "task_options":
            parser.add_argument("--task-option", action="append", default=[], metavar="KEY=VALUE",
                                help="a task setting, repeatable (e.g. num_train=2000)")
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        kind = [a for a in typing.get_args(hints[f.name]) if a is not type(None)] or [hints[f.name]]
        if kind[0] is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                                help=f"{comments.get(f.name, '')} (default: {default})")
        else:
            parser.add_argument(flag, type=kind[0], default=None, metavar=kind[0].__name__.upper(),
                                help=f"{comments.get(f.name, '')} (default: {default})")
    return parser


def _field_comments() -> dict[str, str]:
    """The comment beside each field in TrainConfig's source, as --help text."""
    import inspect

    out = {}
    for line in inspect.getsource(TrainConfig).splitlines():
        name, _, rest = line.strip().partition(":")
        if "#" in rest and name.isidentifier():
            out[name] = rest.split("#", 1)[1].strip()
    return out


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values = {k: v for k, v in vars(args).items() if v is not None and k != "task_option"}
    values.setdefault("progress", sys.stderr.isatty())
    options = {}
    for item in args.task_option:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--task-option: expected KEY=VALUE, got {item!r}")
        options[key] = yaml.safe_load(raw)
    return TrainConfig.from_dict({**values, "task_options": options})


def run_cli(argv: list[str] | None, train_fn) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def report(metrics: dict, checkpoint_dir: str | None = None) -> None:
        shown = " ".join(f"{k}={_fmt(v)}" for k, v in metrics.items() if not k.startswith("update_rate_layer"))
        print(shown, file=sys.stderr, flush=True)

    try:
        result = train_fn(cfg, report)
    except ValueError as exc:   # bad task options surface when the task is loaded
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result), flush=True)
    return 0 if result.get("status") == "completed" else 1


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
