"""Paper figures from the results store and the fits: `python -m figures` regenerates them all.

Public API:
- `FIGURES`: the figure modules in order (see figures.registry for the module convention);
- `Inputs`: the input directories (results store, fits output, Soft MoE results, the regime sweep's
  fits, SRAVEN store and its fits, SRAVEN learning curves), loaded lazily;
- `render(figure, inputs, out_dir)`: data -> plot -> `<out_dir>/<NAME>.{png,pdf,csv}`, atomically;
- `main(argv)`: the command line.
"""

from figures.cli import main, render
from figures.inputs import Inputs
from figures.registry import FIGURES

__all__ = ["FIGURES", "Inputs", "main", "render"]
