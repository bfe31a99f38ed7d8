"""Sympy symbols for the toolkit's notation (docs/theory.md), with their assumptions.

Counts (T, k, m, s, h, d, S) are positive integers; ``k`` and ``s`` are declared positive *real* so that
the continuous relaxation (derivatives in k, elasticities in s) is well defined; the integer versions are
used where a statement is about integers (``k_int``). Constants of the bounds are positive reals.
"""

from __future__ import annotations

import sympy as sp

# sizes of the problem
T = sp.Symbol("T", positive=True)  # experts per layer (real here: it only enters through log(T/k), T/S)
k = sp.Symbol("k", positive=True)  # experts activated per input (continuous relaxation)
k_int = sp.Symbol("k", positive=True, integer=True)
T_int = sp.Symbol("T", positive=True, integer=True)
m = sp.Symbol("m", positive=True)  # training samples
s = sp.Symbol("s", positive=True)  # task complexity: skills composed by one target
h = sp.Symbol("h", positive=True)  # expert width
d = sp.Symbol("d", positive=True, integer=True)  # input dimension
S = sp.Symbol("S", positive=True)  # skills owned by the teacher (n_skills)

# P2's bound
d_N = sp.Symbol("d_N", positive=True)  # Natarajan dimension of the router class
R_m = sp.Symbol("R_m", positive=True)  # Rademacher complexity of the single-expert class
C = sp.Symbol("C", positive=True)  # Lipschitz constant of the loss
delta = sp.Symbol("delta", positive=True)  # confidence level, 0 < delta < 1

# norms of the expert class (theory.estimation)
B_a = sp.Symbol("B_a", positive=True)  # ||a||_2 of the output weights
B_w = sp.Symbol("B_w", positive=True)  # ||w_i||_2 (incl. bias) of every hidden unit

# our approximation bound (theory.approximation)
h0 = sp.Symbol("h_0", positive=True)  # width at which one expert fits one skill to error 1
beta = sp.Symbol("beta", positive=True)  # width exponent of the per-skill approximation error
N_c = sp.Symbol("N_c", positive=True)  # number of skill combinations seen in training
lam = sp.Symbol("lambda", positive=True)  # weight of the estimation term in the risk (loss units)

# helpers used in proofs
u = sp.Symbol("u", nonnegative=True)  # log(T/k) >= 0 when k <= T
eps = sp.Symbol("epsilon", positive=True)  # a per-skill approximation error in (0, 1)
a = sp.Symbol("a", positive=True)  # scale of P3's counterexample inputs
phi = sp.Symbol("phi", real=True)  # P3's router entry Phi_1
phi2 = sp.Symbol("phi_2", real=True)  # a second router entry, shown not to matter

__all__ = ["T", "k", "k_int", "T_int", "m", "s", "h", "d", "S", "d_N", "R_m", "C", "delta", "B_a", "B_w",
           "h0", "beta", "N_c", "lam", "u", "eps", "a", "phi", "phi2"]
