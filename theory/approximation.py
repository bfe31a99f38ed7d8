"""Approximation bound for the toolkit's compositional task (docs/tasks.md): THE TOOLKIT'S OWN DERIVATION,
not P1's (P1's body was not available).

Target (noise-free): y = (1/sqrt(s)) sum_{j in A(x)} g_j(x), |A(x)| = s, skills g_j with mean 0 and
variance 1. Error unit: the target's variance (1), so the numbers are normalized MSE.

Assumptions (each is stated in docs/theory.md, with what breaks it):
  A1  skills are uncorrelated with unit second moment given the active set, so the error of a sum of
      per-skill approximations is the mean of the per-skill errors (sd(G) = sqrt(s)).
  A2  modular student: every expert works for one skill and is active exactly when its skill is (the
      router copies U, possibly with r replicas of a skill's column); the gate is divided out.
  A3  width rate: r experts of width h sharing one skill (total width r h) fit it with squared error
      eps(r h) = min(1, (h_0 / (r h))^beta) (Barron 1993 gives beta = 1 for functions of finite Barron
      norm; h_0 absorbs that norm); a skill with no expert costs its full variance 1.
  A4  top-k: at most k experts are active, at most T exist, and experts of inactive skills are useless.

Result. With coverage kappa = min(1, k/s, T/S) (fraction of the s active skills that get an expert)
and replication r = max(1, min(k/s, T/S)) (experts per covered skill, fractional allocation),

    A(k) = 1 - kappa (1 - eps(r h)).

* k <= s (and T >= S): A = 1 - (k/s)(1 - eps(h)), linear in k: each missing skill costs 1/s.
* s <= k <= sT/S: A = eps(k h / s): a decay in k/s with exponent beta.
* k >= sT/S: A = eps(h T/S), the width- (and T-) dependent floor: no more replicas to give.
Idealized case (each expert represents one skill exactly: eps = 0, i.e. h -> infinity): the hinge
A = 1 - min(1, k/s, T/S) = (1 - k/s)_+ when T >= S.

Integer allocation: with k = q s + r0 experts the best split gives r0 skills q+1 experts and the rest q,
i.e. the piecewise-linear interpolation of eps(k h / s) between multiples of s; by convexity of eps the
smooth family is its lower envelope and equals it at k in {s, 2s, ...}.

In distribution vs OOD. Under A2 nothing depends on which combinations were seen (every skill appears in
training by the task's split rule), so the bound holds on held-out combinations unchanged: split="ood".
In distribution a non-modular student can do better by memorizing combinations: r = min(k, floor(T/N_c))
experts per training combination (needs N_c <= T, N_c = number of training combinations), each
combination's s skills sharing width r h, error eps(r h / s). split="id" takes the smaller of the two.
Such a student has no expert trained for a held-out combination, which is why it is excluded from the
OOD bound.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from ._numeric import as_count, as_float, check_k, choice, compile_expr, maybe_scalar
from .symbols import N_c, S, T, beta, h, h0, k, s

SPLITS = ("ood", "id")
FAMILIES = ("smooth", "ideal")


def per_skill_error(width: sp.Expr) -> sp.Expr:
    """eps(H) = min(1, (h_0/H)^beta): squared error of a width-H ReLU net on one unit-variance skill (A3)."""
    return sp.Min(1, (h0 / width) ** beta)


#: fraction of the active skills that get an expert
coverage = sp.Min(1, k / s, T / S)
#: experts per covered skill
replication = sp.Max(1, sp.Min(k / s, T / S))

#: The smooth family (modular student): our approximation bound, in and out of distribution.
approximation_bound = 1 - coverage * (1 - per_skill_error(replication * h))

#: Idealized case: one expert represents one skill exactly (eps = 0): a hinge at k = s.
approximation_ideal = 1 - coverage

#: A memorizing (non-modular) student, in distribution only: min(k, floor(T/N_c)) experts per training
#: combination (further active experts get a vanishing gate); the Max(1, .) only keeps the unused
#: branch finite when N_c > T.
_memo_replicas = sp.Min(k, sp.Max(1, sp.floor(T / N_c)))
approximation_memorizing = sp.Piecewise((per_skill_error(_memo_replicas * h / s), N_c <= T), (1, True))

#: In-distribution bound: the better of the modular and the memorizing student.
approximation_id = sp.Min(approximation_bound, approximation_memorizing)

#: The smooth family on the interval s <= k <= s T / S where eps < 1: a pure power decay in k/s.
approximation_decay = (h0 * s / (k * h)) ** beta


def n_train_combos(s, n_skills, holdout_frac):
    """Number of skill combinations seen in training, by the rule of docs/tasks.md step 5."""
    from scipy.special import comb  # lazily: scipy adds ~1 s to `import theory`, needed only here

    total = comb(n_skills, s, exact=False)
    held = np.round(holdout_frac * total)
    none_held = (s == 1) | (s == n_skills) | (holdout_frac * total < 0.5)
    return total - np.where(none_held, 0.0, held)


_ARGS = (k, s, h, T, S, h0, beta)
_IDEAL_ARGS = (k, s, T, S)
_ID_ARGS = (*_ARGS, N_c)


def approximation_bound_value(k, s, h, T, n_skills=8, h0=2.0, beta=1.0, split="ood", holdout_frac=0.25,
                              family="smooth"):
    """Our approximation bound (normalized MSE of the best top-k student), broadcasting over arrays.

    k: active experts (1 <= k <= T, real allowed); s: complexity (1 <= s <= n_skills); h: expert width;
    T: experts; n_skills: skills of the teacher (S); h0, beta: the width rate eps(H) = min(1, (h0/H)^beta)
    (defaults are placeholders to be fitted); split: "ood" (modular student, also valid on held-out
    combinations) or "id" (adds the memorizing student); holdout_frac: rho of the task, used by "id";
    family: "smooth" (finite width) or "ideal" (hinge, each expert represents one skill exactly).
    """
    choice("split", split, SPLITS)
    choice("family", family, FAMILIES)
    kk = as_float("k", k, lower=1.0)
    ss = as_float("s", s, lower=1.0)
    TT = as_count("T", T)
    SS = as_count("n_skills", n_skills)
    check_k(kk, TT)
    if np.any(ss > SS):
        raise ValueError(f"s: expected 1 <= s <= n_skills, got s={s!r}, n_skills={n_skills!r}")
    hh = as_float("h", h)
    h0v = as_float("h0", h0)
    bv = as_float("beta", beta)
    if family == "ideal":
        fn = compile_expr("approx_ideal", _IDEAL_ARGS, approximation_ideal)
        return maybe_scalar(np.asarray(fn(kk, ss, TT, SS) + 0.0 * hh))
    if split == "ood":
        fn = compile_expr("approx_ood", _ARGS, approximation_bound)
        return maybe_scalar(np.asarray(fn(kk, ss, hh, TT, SS, h0v, bv)))
    rho = as_float("holdout_frac", holdout_frac, positive=False, lower=0.0, upper=1.0)
    nc = n_train_combos(ss, SS, rho)
    fn = compile_expr("approx_id", _ID_ARGS, approximation_id)
    return maybe_scalar(np.asarray(fn(kk, ss, hh, TT, SS, h0v, bv, nc)))
