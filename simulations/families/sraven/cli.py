"""`python -m simulations.families.sraven`: train a grid of SRAVEN transformers (k x R x seed) into a store.

    python -m simulations.families.sraven [--preset quick|learnable|paper|gpu-slice] [--config FILE]
        [--out DIR]
        [--resume] [--overwrite] [--device auto|cpu|cuda] [--dry-run] [--seeds N|A:B|A,B,C]
        [--set FIELD=VALUE] [--executor local|ray] [--workers N]

The grids' command line (simulations.grid) and driver (simulations.driver) run it: same options, bundles,
executors, atomic store, `--resume` and one-line errors. Default output: results/sraven-<preset name>/.
docs/sraven.md.
"""

from __future__ import annotations

from simulations.families import SRAVEN, get_family
from simulations.grid import build_parser
from simulations.grid import main as grid_main


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(get_family(SRAVEN), prog="python -m simulations.families.sraven",
                          description=__doc__.split("\n")[0])
    return grid_main(argv, family=SRAVEN, parser=parser)
