r"""The contextual task: the compositional task with the active set chosen by a context, not by x
(definition mirrored in docs/tasks.md, "The contextual task").

Parameters: those of the compositional task (simulations.families.regression.tasks) and
d_c = d_context.

1. Points: u = [x, c], x ~ N(0, I_d) and c ~ N(0, I_{d_c}) independent; the student reads u.
2. Skills g_j read x only: the same skills, standardised on the same reference inputs, as the
   compositional task of the same (seed, S, d, w), so g is identical between the two tasks.
3. Teacher router: z(c) = U^T c, U in R^{d_c x S} (orthonormal columns when S <= d_c, else unit
   columns), drawn from its own generator; A(u) = indices of the s largest entries of z(c).
4. Target, held-out combinations H_s and splits: as the compositional task's, with A(u) in place of
   A(x). Since A depends on c alone and c is independent of x, every split (OOD included) has
   x ~ N(0, I_d): a held-out combination shifts only the context, never the skills' inputs, so the OOD
   error measures composition (new combinations of skills each seen on all of its inputs) and not
   extrapolation of a skill to unseen inputs.
5. Mixed complexity (`complexity_mix`): the context also sets each point's s, so the router can see how
   many skills an input needs: with L levels sorted ascending and a unit vector v in context space
   (its own generator), s is the level whose quantile bin of N(0, 1) holds v . c (each level has
   probability 1 / L). The compositional task draws s independently of everything the student reads.
6. Determinism: U depends on (seed, S, d_c); the reference contexts on (seed, S, d, w, d_c, n_ref);
   each split's stream on the compositional key plus d_c (x and c drawn together, chunk by chunk).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from simulations.families.regression.task_registry import CONTEXTUAL
from simulations.families.regression.tasks import CompositionalTask, _rng, unit_columns

__all__ = ["ContextualTask"]

# The first entry of this module's generator keys (tasks.py uses 0..5 for its own streams).
_ROUTER_KEY, _REFERENCE_KEY, _LEVEL_KEY = 6, 7, 8


class ContextualTask(CompositionalTask):
    """The teacher of a contextual TaskSpec: the compositional task's skills on x, routed by U^T c."""

    name = CONTEXTUAL
    has_context = True

    @property
    def input_width(self) -> int:
        """Width of a point u = [x, c]: d_in + d_context."""
        return self.spec.d_in + self.spec.d_context

    def _router_matrix(self, rng: np.random.Generator) -> np.ndarray:
        """U [d_context, S] from this task's own generator (the skills' generator is left as the
        compositional task leaves it)."""
        sp = self.spec
        return unit_columns(_rng(sp.seed, _ROUTER_KEY, sp.n_skills, sp.d_context).normal(
            size=(sp.d_context, sp.n_skills)))

    def _reference_points(self, x_ref: np.ndarray) -> np.ndarray:
        """[x_ref, c_ref]: the shared reference inputs with contexts drawn from their own generator."""
        sp = self.spec
        c_ref = _rng(sp.seed, _REFERENCE_KEY, sp.n_skills, sp.d_in, sp.teacher_width, sp.d_context,
                     sp.n_ref).standard_normal((len(x_ref), sp.d_context))
        return np.concatenate([x_ref, c_ref], axis=1)

    def _stream_key(self, split: str) -> tuple[int, ...]:
        return (*super()._stream_key(split), self.spec.d_context)

    def draw_levels(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Each point's s [N] from its context (module docstring, 5.); `rng` is not used."""
        sp = self.spec
        mix = np.sort(np.asarray(sp.complexity_mix))
        v = _rng(sp.seed, _LEVEL_KEY, sp.n_skills, sp.d_context).standard_normal(sp.d_context)
        edges = norm.ppf(np.arange(1, len(mix)) / len(mix))
        return mix[np.searchsorted(edges, self.contexts(x) @ (v / np.linalg.norm(v)))]

    def skill_inputs(self, u: np.ndarray) -> np.ndarray:
        """x = u[:, :d_in]."""
        return u[:, : self.spec.d_in]

    def contexts(self, u: np.ndarray) -> np.ndarray:
        """c = u[:, d_in:]."""
        return u[:, self.spec.d_in:]

    def scores(self, x: np.ndarray) -> np.ndarray:
        """z = U^T c: [N, S] teacher router scores of points u = x (A(u) holds the s largest)."""
        return self.contexts(x) @ self.U
