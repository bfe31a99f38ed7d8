"""The pieces every command line of the toolkit shares: a parser whose errors are one line, and the
options that choose a config (`--preset`, `--config`, `--set`).

Every CLI (the grids, `python -m simulations.families.sraven.curves`, Soft MoE, fits, figures, the
reference and prediction runners) builds its parser here, so bad usage reads the same everywhere: one
line on stderr naming the option and, where there are few, its allowed values, and exit status 2; no
usage block. Imports only argparse and the config readers, so a CLI pays nothing for it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, NoReturn

from simulations.config import parse_override


class OneLineParser(argparse.ArgumentParser):
    """argparse with a one-line error: `<label>error: MESSAGE` on stderr and exit status 2, or, with
    `raise_as`, that exception raised with MESSAGE (for a CLI whose `run` callers catch its own error)."""

    def __init__(self, *args: Any, label: str = "", raise_as: type[Exception] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.label, self.raise_as = label, raise_as

    def error(self, message: str) -> NoReturn:
        if self.raise_as is not None:
            raise self.raise_as(message)
        self.exit(2, f"{self.label}error: {message}\n")


def add_preset(p: argparse.ArgumentParser, names: Sequence[str], default: str, *, strict: bool = False,
               config: bool = True, help: str | None = None) -> None:
    """`--preset NAME`: one of the built-in `names` (default `default`). Unless `strict`, any name parses
    and the config loader refuses an unknown one in one line naming the allowed ones
    (simulations.config.preset); `strict` lets argparse refuse it (same line, same exit status)."""
    text = help or f"built-in config: {', '.join(names)} (default: {default})"
    p.add_argument("--preset", metavar="NAME", default=default if strict else None,
                   choices=list(names) if strict else None,
                   help=text + ("; not with --config" if config else ""))


def add_config(p: argparse.ArgumentParser, default: str) -> None:
    """`--config FILE`: a YAML or TOML config instead of a preset."""
    p.add_argument("--config", metavar="FILE", help=f"YAML or TOML config (default: the {default} preset)")


def add_set(p: argparse.ArgumentParser) -> None:
    """`--set FIELD=VALUE`, repeatable: one config field each, the value read as YAML."""
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override one config field (value read as YAML), e.g. --set lr=0.001 "
                   "or --set training.lr=0.001")


def add_config_options(p: argparse.ArgumentParser, names: Sequence[str] | None, default: str) -> None:
    """`--preset` (where `names` are given), `--config` and `--set`: the options that pick a config."""
    if names:
        add_preset(p, names, default)
    add_config(p, default)
    add_set(p)


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The `--set` items of parsed arguments as {field: value} (ConfigError on a malformed one)."""
    return dict(parse_override(item) for item in args.set)
