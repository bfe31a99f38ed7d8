"""`python -m fits.references [NAME ...] [--dry-run] [--stage grids|fits|all] [--workers N]`: every
reference result, made or resumed by one command (`make reference`).

A reference preset (REFERENCES) names the grids that make its stores under results/ and the fits that
read them; each fit becomes docs/reference/<fit name>/ (fits.snapshot: cells.csv, optimal_k.json,
report.md, means.csv, rows.sha256.csv and provenance.json). Grids resume, so a killed run continues
where it stopped; the dry run prints each grid's estimated time and the total. A reference is written
only from a clean tree and from a store that every run made at that tree's commit from a clean tree
(the store's manifest "runs"), so its commit alone reproduces it; tests/fits/test_reference_slices.py
reruns a bundle of each.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from fits.data import FitInputError
from fits.snapshot import write_snapshot
from simulations.arms import EXPERTS
from simulations.atomic import atomic_write_text
from simulations.cli import OneLineParser
from simulations.driver import plan, resolve_device
from simulations.families import REGRESSION, SRAVEN, get_family
from simulations.families.regression.task_registry import COMPOSITIONAL
from simulations.grid import build_parser, config_from_args

RESULTS = Path("results")
REFERENCE = Path("docs/reference")
WALL = "reference_wall.json"  # a store's grid wall time summed over the runs of this command


@dataclass(frozen=True)
class Grid:
    """One store: `results/<store>`, made by the grid CLI of `family` with `args`."""

    store: str
    args: tuple[str, ...] = ()
    family: str = REGRESSION

    @property
    def module(self) -> str:
        return "simulations.grid" if self.family == REGRESSION else f"simulations.families.{self.family}"

    def argv(self, workers: int | None = None) -> list[str]:
        extra = ["--workers", str(workers)] if workers else []
        return [*self.args, "--out", str(RESULTS / self.store), "--resume", "--no-progress", *extra]

    def command(self) -> str:
        return " ".join(["python", "-m", self.module, *self.args, "--out", str(RESULTS / self.store)])

    def config(self, workers: int | None = None):
        """The config this grid command builds (the family's CLI parses `args`)."""
        fam = get_family(self.family)
        return config_from_args(build_parser(fam).parse_args(self.argv(workers)), fam)


@dataclass(frozen=True)
class Fit:
    """docs/reference/<name>: `python -m fits.optimal_k results/<store> <args>`."""

    name: str
    store: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reference:
    name: str
    what: str
    grids: tuple[Grid, ...]
    fits: tuple[Fit, ...]


def _set(**kw: str) -> tuple[str, ...]:
    return tuple(a for k, v in kw.items() for a in ("--set", f"{k}={v}"))


ID, NO_THEORY, FEAT = ("--metric", "id"), ("--no-theory",), ("--metric", "feat_ood")
LAW, EST = ("--config", "configs/law.yaml"), ("--config", "configs/estimators.yaml")
# the teacher's skills as experts (the registry's expert kind that reads the teacher's outputs), and the
# router started at the teacher's scores (the router_init choice of that name)
TEACHER_EXPERTS = next(k for k in EXPERTS.values() if k.needs_expert_out).name
TEACHER = _set(experts=TEACHER_EXPERTS, width="4")
TEACHER_INIT = _set(router_init=TEACHER_EXPERTS, estimator="[pathwise,score]", complexity="[2,4]",
                    k="[2,4,8]")

# In the order `make reference` runs them (cheapest first, so a short session finishes the most).
REFERENCES: dict[str, Reference] = {r.name: r for r in (
    Reference("quick", "the main job's grid (make run): every arm at m <= 500",
              (Grid("quick"),),
              (Fit("quick", "quick"),)),
    Reference("adaptive", "adaptive k: experts per input by the input's s (top-p router)",
              (Grid("adaptive", ("--config", "configs/adaptive.yaml")),),
              (Fit("adaptive", "adaptive"),)),
    Reference("active-compute", "k at fixed active width k h (learned, oracle)",
              (Grid("active_compute", ("--config", "configs/active_compute.yaml")),),
              (Fit("active-compute", "active_compute", ID),)),
    Reference("oracle-r4", "the oracle with r = 4 replicas per skill: k* moves to its cap",
              (Grid("oracle_r4", ("--config", "configs/oracle_r4.yaml")),),
              (Fit("oracle-r4", "oracle_r4", ID),)),
    Reference("sraven-learnable", "SRAVEN, column tokens, 600 steps: k* on R (whole problems, per feature)",
              (Grid("sraven-learnable", ("--preset", "learnable"), SRAVEN),),
              (Fit("sraven-learnable", "sraven-learnable"),
               Fit("sraven-learnable-feat", "sraven-learnable", ("--metric", "feat_ood")))),
    Reference("sraven-converge", "SRAVEN trained to a plateau, score function and pathwise: k* on R",
              (Grid("sraven-converge", ("--preset", "converge"), SRAVEN),),
              tuple(Fit(f"sraven-converge{'' if est == 'score' else '-' + est}{suffix}", "sraven-converge",
                        ("--where", f"estimator={est}", *metric))
                    for est in ("score", "pathwise") for suffix, metric in (("", ()), ("-feat", FEAT)))),
    Reference("composition", "every gate family on the contextual and the compositional task",
              (Grid("composition", ("--config", "configs/composition.yaml")),
               Grid("composition-compositional", ("--config", "configs/composition.yaml",
                                                  *_set(task=COMPOSITIONAL)))),
              (Fit("composition", "composition"), Fit("composition-id", "composition", ID),
               Fit("composition-compositional", "composition-compositional"))),
    Reference("standard", "the answer per router arm on the compositional task, m = 2000, h = 4",
              (Grid("standard", ("--config", "configs/standard.yaml")),),
              (Fit("standard", "standard"), Fit("standard-id", "standard", ID))),
    Reference("law", "the law of k over s, m and h: the learned arm and the teacher-experts arm",
              (Grid("law", LAW),
               Grid("law-teacher", (*LAW, *TEACHER))),
              (Fit("law", "law", ID), Fit("law-ood", "law"), Fit("law-teacher", "law-teacher", ID),
               Fit("law-teacher-ood", "law-teacher"))),
    Reference("estimators", "the estimator map: which router gradient finds the composition",
              (Grid("estimators", EST),
               Grid("estimators-compositional", (*EST, *_set(task=COMPOSITIONAL))),
               Grid("estimators-teacher-init", (*EST, *TEACHER_INIT)),
               Grid("gate_values", ("--config", "configs/gate_values.yaml")),
               Grid("estimators-single-skill", ("--config", "configs/estimators_single_skill.yaml"))),
              tuple(Fit(s, s, (*ID, *NO_THEORY)) for s in (
                  "estimators", "estimators-compositional", "estimators-single-skill",
                  "estimators-teacher-init", "gate_values"))),
)}


# Registered fits whose docs/reference/ directory this command has not (yet) made from a clean tree, and
# why (a preset added to the registry before its grid ran). tests/fits/test_reference.py holds the list
# to the files, and `make reference ARGS="<names>"` makes them. Every registered fit is made today.
NOT_MADE_CLEAN: dict[str, str] = {}


def registered_fits() -> dict[str, tuple[Fit, Grid]]:
    """Every reference directory's name: its fit and the grid of its store."""
    return {f.name: (f, next(g for g in r.grids if g.store == f.store))
            for r in REFERENCES.values() for f in r.fits}


def grids_of(names: list[str]) -> list[Grid]:
    return [g for n in names for g in REFERENCES[n].grids]


def dry_run(names: list[str], workers: int | None) -> float:
    """Print each grid's models left and estimated seconds; returns the total."""
    total = 0.0
    for g in grids_of(names):
        config = g.config(workers)
        p = plan(config, resolve_device(config.runtime.device), RESULTS / g.store, True)
        total += p["seconds"]
        print(f"{g.store:28s} {p['models']:5d} models to train ({p['skipped']} stored)  "
              f"~{p['seconds'] / 60:5.1f} min{' at most' if p['bound'] else ''}")
    print(f"total: ~{total / 60:.0f} min (regression grids: upper bounds, no early stopping)")
    return total


def stored_wall(store: str) -> float | None:
    """The grid wall time of `results/<store>` summed over the runs of this command (None: no record)."""
    wall_file = RESULTS / store / WALL
    return json.loads(wall_file.read_text())["wall_s"] if wall_file.exists() else None


def run_grid(g: Grid, workers: int | None) -> None:
    """Run or resume one grid in its own process and add its wall time to the store's WALL file."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", g.module, *g.argv(workers)], check=True)
    done = stored_wall(g.store) or 0.0
    atomic_write_text(RESULTS / g.store / WALL, json.dumps({"wall_s": done + time.perf_counter() - t0}))


def run_fit(f: Fit, grid: Grid) -> None:
    """Fit one store and write its reference directory (refused unless tree and store are clean)."""
    fits_dir = RESULTS / f"fits-reference-{f.name}"
    subprocess.run([sys.executable, "-m", "fits.optimal_k", str(RESULTS / f.store), "--out", str(fits_dir),
                    *f.args], check=True)
    write_snapshot(fits_dir, RESULTS / f.store, REFERENCE / f.name, stored_wall(f.store), grid.command(),
                   " ".join(["python", "-m", "fits.optimal_k", str(RESULTS / f.store), *f.args]))


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m fits.references", description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help=f"references to make (default all): {', '.join(REFERENCES)}")
    p.add_argument("--dry-run", action="store_true", help="print each grid's estimated time and the total")
    p.add_argument("--stage", default="all", choices=("grids", "fits", "all"),
                   help="grids only, fits and reference directories only, or both (default)")
    p.add_argument("--workers", type=int, default=2, help="bundles trained at once per grid (default 2)")
    args = p.parse_args(argv)
    unknown = [n for n in args.names if n not in REFERENCES]
    if unknown:
        print(f"error: names: unknown reference {unknown[0]!r}; expected one of {', '.join(REFERENCES)}",
              file=sys.stderr)
        return 2
    names = args.names or list(REFERENCES)
    if args.dry_run:
        dry_run(names, args.workers)
        return 0
    try:
        for name in names:
            ref = REFERENCES[name]
            if args.stage in ("grids", "all"):
                for g in ref.grids:
                    run_grid(g, args.workers)
            if args.stage in ("fits", "all"):
                stores = {g.store: g for g in ref.grids}
                for f in ref.fits:
                    run_fit(f, stores[f.store])
    except (FitInputError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
