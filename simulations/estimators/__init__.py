"""Gradient estimators for a learned router's top-k selection: how a training step turns the task loss
into gradients for the router (docs/tasks.md, "Estimators").

Each estimator is one class in one module of this package, registered by `register_estimator`, with its
own settings (a frozen dataclass of config settings, `Estimator.Settings`); importing the package
imports every module in it, so a new estimator is one new file. The grid's `estimator` axis picks one
per cell for router kinds that take estimators (`RouterKind.takes_estimator`); every other kind trains
with `pathwise`, today's gradient through the gates.

Public API: `ESTIMATORS` (name -> class, registration order), `DEFAULT_ESTIMATOR`, `estimator(name)`,
`register_estimator`, `settings_fields()` (every estimator's settings, the config's `estimators`
section), and for writing one: `Estimator`, `Batch`, and `plackett_luce` (Gumbel-top-k samples and the
log-probability of a ranked selection).
"""

from __future__ import annotations

import pkgutil
import sys
from importlib import import_module

from simulations.estimators.base import (
    DEFAULT_ESTIMATOR,
    ESTIMATORS,
    Batch,
    Estimator,
    estimator,
    register_estimator,
    settings_fields,
)

# The default first (registration order is the order of the config's choices), then the rest by name.
for _mod in [DEFAULT_ESTIMATOR, *sorted(m.name for m in pkgutil.iter_modules(__path__))]:
    if _mod not in ("base", "plackett_luce") and f"{__name__}.{_mod}" not in sys.modules:
        import_module(f"{__name__}.{_mod}")

__all__ = ["DEFAULT_ESTIMATOR", "ESTIMATORS", "Batch", "Estimator", "estimator", "register_estimator",
           "settings_fields"]
