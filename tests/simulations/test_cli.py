"""Every command line builds its parser from simulations.cli: bad usage is one line on stderr and exit
status 2 everywhere, and the options that pick a config (`--preset`, `--config`, `--set`) are the same
options on every grid CLI."""

from __future__ import annotations

import argparse

import pytest

import figures.cli
from fits import claims, optimal_k, predictions, references
from simulations import cli, grid
from simulations.families import SRAVEN, get_family
from simulations.families.regression import copies
from simulations.families.softmoe import __main__ as softmoe
from simulations.families.sraven import cli as sraven
from simulations.families.sraven import curves

MAINS = {"grid": grid.main, "sraven": sraven.main, "sraven.curves": curves.main, "softmoe": softmoe.main,
         "fits.optimal_k": optimal_k.main, "figures": figures.cli.main, "fits.references": references.main,
         "fits.predictions": predictions.main, "fits.claims": claims.main, "copies": copies.main}

#: What a CLI needs before an unknown option is the first thing wrong.
REQUIRED = {"softmoe": ["single-expert"], "sraven.curves": ["--out", "x"]}


def _exit_code(main, argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize("name", sorted(MAINS))
def test_an_unknown_option_is_one_line_and_status_2(name, capsys):
    argv = REQUIRED.get(name, []) + ["--bogus"]
    assert _exit_code(MAINS[name], argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error: " in err[0] and "--bogus" in err[0], err


def test_one_line_parser_labels_or_raises():
    class Bad(Exception):
        pass

    with pytest.raises(Bad, match="unrecognized arguments: -x"):
        cli.OneLineParser(prog="p", raise_as=Bad).parse_args(["-x"])
    with pytest.raises(SystemExit) as exc:
        cli.OneLineParser(prog="p", label="p: ").parse_args(["-x"])
    assert exc.value.code == 2


def test_every_grid_cli_has_the_same_config_options():
    def options(p: argparse.ArgumentParser) -> set[str]:
        return {o for a in p._actions for o in a.option_strings}

    regression, sraven_parser = grid.build_parser(), grid.build_parser(get_family(SRAVEN))
    assert {"--preset", "--config", "--set"} <= options(regression) == options(sraven_parser)
    assert {"--preset", "--config", "--set"} <= options(curves.build_parser())


def test_strict_preset_refuses_a_name_argparse_does_not_know(capsys):
    p = cli.OneLineParser(prog="p")
    cli.add_preset(p, ["a", "b"], "a", strict=True)
    assert p.parse_args([]).preset == "a"
    with pytest.raises(SystemExit):
        p.parse_args(["--preset", "c"])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'a'" in err and "'b'" in err


def test_set_items_parse_as_yaml():
    p = cli.OneLineParser(prog="p")
    cli.add_config_options(p, ["quick"], "quick")
    args = p.parse_args(["--set", "k=[1,2]", "--set", "training.lr=0.5"])
    assert cli.overrides(args) == {"k": [1, 2], "training.lr": 0.5} and args.preset is None
