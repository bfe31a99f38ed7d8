"""P3 (Chung et al. 2024), Theorem 1 as an executable check, and Algorithm 1's expert selection.

Soft MoE with one slot per expert, n = 1 expert, n_tokens = 2, d = 2 (the counterexamples only use the
first coordinate, so the router's second entry phi_2 is kept symbolic to show it does not matter).
L = X Phi; dispatch D = softmax of L over tokens; the single expert sees X~ = D^T X; the combine matrix
is all ones (softmax over one expert), so the layer output is a function of X~ alone.

Families (a > 0 grows), target t(X) = ||X||_2 (Frobenius; equal to the spectral norm here):
  Phi_1 > 0:  A = a (e_11 - e_21),  B = a e_11      -> X~(A) - X~(B) -> 0,  t(A) - t(B) = (sqrt 2 - 1) a
  Phi_1 = 0:  A = (a/2)(e_11 + e_21), B = a e_11     -> X~(A) = X~(B),        t(B) - t(A) = (1 - 1/sqrt 2) a
  Phi_1 < 0:  A = a (e_21 - e_11),  B = -a e_11      -> X~(A) - X~(B) -> 0,  t(A) - t(B) = (sqrt 2 - 1) a
For Lipschitz f, g the outputs g(sMoE(A)), g(sMoE(B)) then differ by o(1) or 0, while the allowed errors
max(1, t/20) sum to (t(A) + t(B))/20 < |t(A) - t(B)| for large a: no such f, g exist.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from .symbols import a, phi, phi2

N_TOKENS, DIM = 2, 2
Phi = sp.Matrix([phi, phi2])  # router for the single expert, d x n = 2 x 1


def dispatch(X: sp.Matrix, router: sp.Matrix = Phi) -> sp.Matrix:
    """D(X): softmax over tokens of the logits X Phi (one column per expert)."""
    logits = X * router
    e = logits.applyfunc(sp.exp)
    return e / sum(e)


def expert_input(X: sp.Matrix, router: sp.Matrix = Phi) -> sp.Matrix:
    """X~ = D(X)^T X: what the single expert sees (1 x d)."""
    return dispatch(X, router).T * X


def target(X: sp.Matrix) -> sp.Expr:
    """t(X) = ||X||_2 (Frobenius norm)."""
    return sp.sqrt(sum(x**2 for x in X))


def _e(i: int, j: int) -> sp.Matrix:
    M = sp.zeros(N_TOKENS, DIM)
    M[i, j] = 1
    return M


@dataclass(frozen=True)
class Family:
    """One counterexample family of P3's proof: the router sign, the inputs A and B, and the router used."""

    name: str
    sign: int  # sign of Phi_1
    A: sp.Matrix
    B: sp.Matrix

    @property
    def router(self) -> sp.Matrix:
        p = sp.Symbol("phi_1", positive=True)
        return sp.Matrix([self.sign * p if self.sign else 0, phi2])


FAMILIES = (
    Family("Phi_1 > 0", 1, a * (_e(0, 0) - _e(1, 0)), a * _e(0, 0)),
    Family("Phi_1 = 0", 0, (a / 2) * (_e(0, 0) + _e(1, 0)), a * _e(0, 0)),
    Family("Phi_1 < 0", -1, a * (_e(1, 0) - _e(0, 0)), -a * _e(0, 0)),
)


def family_limits(fam: Family) -> dict:
    """Symbolic facts about one family as a grows: limits of the dispatch weights and expert inputs,
    the target gap and whether it beats P3's error allowance."""
    R = fam.router
    DA, DB = dispatch(fam.A, R), dispatch(fam.B, R)
    xa, xb = expert_input(fam.A, R), expert_input(fam.B, R)
    gap = sp.simplify(sp.Abs(target(fam.A) - target(fam.B)))
    allowance = (target(fam.A) + target(fam.B)) / 20  # max(1, t/20) = t/20 once t >= 20
    return {
        "dispatch_A": [sp.limit(x, a, sp.oo) for x in DA],
        "dispatch_B": [sp.limit(x, a, sp.oo) for x in DB],
        "input_gap": [sp.limit(sp.simplify(x - y), a, sp.oo) for x, y in zip(xa, xb, strict=True)],
        "input_gap_exact": [sp.simplify(x - y) for x, y in zip(xa, xb, strict=True)],
        "target_gap": gap,
        "target_gap_limit": sp.limit(gap, a, sp.oo),
        "gap_over_allowance": sp.simplify(gap / allowance),
    }


def algorithm1_select(combine: np.ndarray, k: int) -> np.ndarray:
    """P3's Algorithm 1: indices of the k experts with the LARGEST combine-weight column sums.

    combine: (..., n_tokens, n_experts) combine weights C(X). Returns (..., k) expert indices, largest
    sum first (the paper's pseudocode sorts ascending and keeps the first k, the smallest: a slip).
    """
    combine = np.asarray(combine, dtype=float)
    n = combine.shape[-1]
    if not 1 <= k <= n:
        raise ValueError(f"k: expected 1 <= k <= n_experts ({n}), got {k!r}")
    sums = combine.sum(axis=-2)
    order = np.argsort(-sums, axis=-1, kind="stable")
    return order[..., :k]


def algorithm1_output(combine: np.ndarray, expert_outputs: np.ndarray, k: int) -> np.ndarray:
    """C(X) Y^ where Y^ keeps the rows of Y~ (n_experts, d) of the selected experts and zeros the rest."""
    combine = np.asarray(combine, dtype=float)
    y = np.asarray(expert_outputs, dtype=float)
    keep = algorithm1_select(combine, k)
    mask = np.zeros(combine.shape[:-2] + combine.shape[-1:], dtype=bool)
    np.put_along_axis(mask, keep, True, axis=-1)
    return combine @ np.where(mask[..., :, None], y, 0.0)
