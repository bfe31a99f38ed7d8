"""P2 (Zhao, Wang, Wang 2024), Theorem 1: the generalization bound of a sparse top-k MoE, and its
instantiation for the toolkit's own expert and router classes.

Bound as printed (natural log), with probability >= 1 - delta over m samples, for every f in F(T, k):

    4 C R_m(H) + 2 sqrt( (2 k d_N (1 + log(T/k)) + d_N log(2m) + log(4/delta)) / (2m) )
    \\_________/  \\______________________________________________________________/
    expert term                          routing term

Counting step: the router picks one of binom(T, k) subsets and log binom(T, k) <= k (1 + log(T/k)).
d/dk [k (1 + log(T/k))] = log(T/k) >= 0 on k <= T, so the bound never decreases in k.

Instantiation (the toolkit's derivation; P2's corollaries could not be read):

* Experts: H = {x -> sum_{i<=h} a_i relu(w_i . x~)}, x~ = (x, 1) (bias absorbed), ||w_i||_2 <= B_w for
  every unit, ||a||_2 <= B_a. Then ||a||_1 <= sqrt(h) B_a, the class lies in sqrt(h) B_a times the
  symmetric convex hull of {relu(w . x~)}, the hull costs a factor 2 (E sup |.| <= 2 E sup(.) because
  0 is in the class), relu is 1-Lipschitz with relu(0) = 0 (Ledoux-Talagrand contraction), and linear
  functions with ||w|| <= B_w have R_m <= B_w sqrt(E ||x~||^2 / m) = B_w sqrt((d + 1)/m) for
  x ~ N(0, I_d) (Jensen). Hence R_m(H) <= 2 B_a B_w sqrt(h (d + 1) / m).
* Router: top-k of Theta^T x~ over T experts is the argmax over k-subsets A of the linear score
  <Theta, Psi(x, A)> with Psi(x, A) = x~ (x) 1_A in R^{(d+1) T}; linear multiclass predictors with a
  class-sensitive feature map in R^t have Natarajan dimension <= t (Shalev-Shwartz & Ben-David,
  Understanding Machine Learning, Thm 29.7). Hence d_N <= (d + 1) T, independent of k.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from ._numeric import as_count, as_float, check_k, compile_expr, maybe_scalar
from .symbols import B_a, B_w, C, R_m, T, d, d_N, delta, h, k, m

#: k (1 + log(T/k)): the upper bound on log binom(T, k) used by P2's counting step.
routing_complexity = k * (1 + sp.log(T / k))

#: 2 sqrt((2 k d_N (1 + log(T/k)) + d_N log(2m) + log(4/delta)) / (2m)): the router's share of the bound.
routing_term = 2 * sp.sqrt((2 * d_N * routing_complexity + d_N * sp.log(2 * m) + sp.log(4 / delta)) / (2 * m))

#: 4 C R_m(H): the experts' share of the bound (independent of k).
expert_term = 4 * C * R_m

#: P2's Theorem 1 as printed (natural log).
estimation_bound = expert_term + routing_term

#: Our bound on R_m(H) for 2-layer ReLU experts of width h with ||a||_2 <= B_a, ||w_i||_2 <= B_w.
rademacher_relu = 2 * B_a * B_w * sp.sqrt(h * (d + 1) / m)

#: Our bound on the Natarajan dimension of the linear top-k router over T experts in d dimensions.
natarajan_topk = (d + 1) * T

#: P2's bound with the toolkit's R_m(H) and d_N substituted.
instantiated_bound = estimation_bound.subs({R_m: rademacher_relu, d_N: natarajan_topk})


def estimation_bound_value(m, T, k, d_N, R_m, C=1.0, delta=0.05):
    """P2's Theorem 1 bound, evaluated with numpy (broadcasting over array arguments).

    m: training samples; T: experts; k: active experts (1 <= k <= T, real values allowed for the
    continuous relaxation); d_N: Natarajan dimension of the router class; R_m: Rademacher complexity of
    the single-expert class at m; C: Lipschitz constant of the [0, 1] loss; delta: confidence level.
    """
    args = _common(m, T, k, C, delta)
    d_N = as_float("d_N", d_N)
    R_m = as_float("R_m", R_m, positive=False, lower=0.0)
    fn = compile_expr("estimation", _SYMS, estimation_bound)
    return maybe_scalar(np.asarray(fn(args["m"], args["T"], args["k"], d_N, R_m, args["C"], args["delta"])))


_SYMS = (m, T, k, d_N, R_m, C, delta)


def _common(m, T, k, C, delta) -> dict[str, np.ndarray]:
    out = {"m": as_float("m", m), "T": as_count("T", T), "k": as_float("k", k, lower=1.0),
           "C": as_float("C", C), "delta": as_float("delta", delta, upper=1.0 - 1e-12)}
    check_k(out["k"], out["T"])
    return out


def instantiated_estimation_bound(m, T, k, d, h, C=1.0, delta=0.05, B_a=1.0, B_w=1.0, clip=None):
    """P2's bound with the toolkit's R_m(H) = 2 B_a B_w sqrt(h (d+1)/m) and d_N = (d+1) T.

    Experts: 2-layer ReLU MLPs of width h with biases, output weights ||a||_2 <= B_a and every hidden
    unit's weights (bias included) ||w_i||_2 <= B_w; inputs x ~ N(0, I_d) (E||(x, 1)||^2 = d + 1).
    Router: linear top-k over T experts in d dimensions (with bias).

    P2's theorem is for a loss with values in [0, 1] that is C-Lipschitz in the prediction. For the
    toolkit's regression this needs a clipped squared loss: with predictions and labels clipped to
    [-clip, clip], (f - y)^2 / (4 clip^2) lies in [0, 1] and is (1/clip)-Lipschitz in f. Passing
    ``clip`` sets C = 1/clip and returns the bound in MSE units (times 4 clip^2), comparable with a
    measured test-minus-train MSE gap; without it (default) C is used as given and the value is in
    [0, 1]-loss units. Expect a large scale mismatch either way: the bound is worst-case over the
    class, of order sqrt(k d T / m) + sqrt(h d / m), typically 10-100x a measured gap, so compare its
    trend in k, m and h, not its level.
    """
    args = _common(m, T, k, C, delta)
    dd = as_count("d", d)
    hh = as_float("h", h)
    ba = as_float("B_a", B_a)
    bw = as_float("B_w", B_w)
    scale = 1.0
    if clip is not None:
        clip = as_float("clip", clip)
        args["C"] = 1.0 / clip
        scale = 4.0 * clip**2
    fn = compile_expr("instantiated", _INST_SYMS, instantiated_bound)
    out = fn(args["m"], args["T"], args["k"], dd, hh, args["C"], args["delta"], ba, bw)
    return maybe_scalar(np.asarray(scale * out))


_INST_SYMS = (m, T, k, d, h, C, delta, B_a, B_w)
