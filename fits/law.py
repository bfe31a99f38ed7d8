"""The scaling law of k*: log k* = b0 + b_s log s + b_m log m + b_h log h, fitted with statsmodels.

Which k* feeds the law (`k_source`): by default the continuous k* of each cell's smooth fit (`fits.curve`),
because the discrete argmin only takes the tested values of k, so its log is a step function of the
factors and a log-log regression on it is biased towards the grid and has lumpy residuals. The other
sources are the cells' discrete estimands (`fits.cells.ESTIMANDS`, docs/fits.md "Estimands"):
`discrete` (the argmin), `enough` (k within 5 % of the minimum), `enough_2` (2 %) and `one_se` (one
paired SE); each is fitted the same way, censored cells left out.

Censored cells (discrete k* at the smallest or largest tested k) and cells whose smooth fit puts k* on
the edge of the tested range are excluded, and counted: their k* is only a bound, never an exact value.
A factor with a single level among the remaining cells cannot have an exponent: its term is dropped, and
the fit says so.

Methods: `hc3` (the default: OLS with heteroscedasticity-robust HC3 standard errors), `ols` (classical
standard errors), `wls` (weights 1 / bootstrap variance of log k*). In planted-law studies (docs/fits.md)
OLS and HC3 intervals covered the truth about 95% of the time while WLS under-covered (0.75-0.9): with a
handful of seeds the bootstrap variances are noisy and correlated with the errors they weight. The seed-
cluster bootstrap draws of every cell are also pushed through the same fit, giving bootstrap intervals
that account for the correlation between cells that share seeds.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import optimize, stats
from statsmodels.stats.diagnostic import het_breuschpagan

from fits.cells import CellFits, censored_column
from fits.data import LAW_FACTORS

METHODS = ("wls", "ols", "hc3")
# k_source -> the cells' estimand column it fits (continuous: the smooth fit's k*)
ESTIMAND_OF = {"continuous": "k_star_cont", "discrete": "k_star", "enough": "k_enough",
               "enough_2": "k_enough_2", "one_se": "k_one_se"}
K_SOURCES = tuple(ESTIMAND_OF)


class LawNotIdentified(ValueError):
    """The law cannot be fitted on these cells (too few usable cells); the message says why."""


@dataclass
class LawFit:
    """A fitted law of k*. `exponents` is tidy: one row per factor (NaN estimate where dropped)."""

    exponents: pd.DataFrame
    intercept: float
    r2: float
    aic: float
    bic: float
    n_cells: int
    method: str
    k_source: str
    factors: list[str]
    data: pd.DataFrame
    result: object  # the statsmodels results object
    alternatives: pd.DataFrame
    lolo: pd.DataFrame
    diagnostics: dict
    notes: list[str] = field(default_factory=list)


def _term(factor: str) -> str:
    return f"log_{factor}"


def law_cells(cells: pd.DataFrame, k_source: str) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(censored, edge, keep) per cell for the law on `k_source`'s estimand: a censored k* is only a
    bound, a continuous k* the smooth fit put on the edge of the tested range is not an optimum, and a
    cell with no k* has nothing to fit; the rest are kept. `cells` as CellFits has them or as
    optimal_k.json stores them (missing flags read as not set)."""
    cont = k_source == "continuous"
    name = ESTIMAND_OF[k_source]
    k = cells[name].astype(float)
    censored = cells["censored" if cont else censored_column(name)].fillna("").astype(str) != ""
    edge = (cells["cont_at_edge"].fillna(False).astype(bool) & ~censored if cont
            else pd.Series(False, index=cells.index))
    return censored, edge, ~censored & ~edge & np.isfinite(k)


def law_data(cf: CellFits, k_source: str = "continuous") -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """Cells usable for the law (one row each, with `y` = log k* and `var` its bootstrap variance), their
    bootstrap draws of log k* (n_cells, B), and notes on what was excluded."""
    if k_source not in K_SOURCES:
        raise ValueError(f"unknown k_source {k_source!r}: allowed values are {', '.join(K_SOURCES)}")
    c = cf.cells
    cont = k_source == "continuous"
    name = ESTIMAND_OF[k_source]
    k = c[name]
    var = c["log_k_cont_var"] if cont else c[f"log_{name}_var"]
    boot = cf.boot_k_cont if cont else cf.boot[name]
    censored, edge, keep = law_cells(c, k_source)
    missing = ~keep & ~censored & ~edge
    notes = []
    if censored.any():
        notes.append(
            f"{int(censored.sum())} censored cell(s) excluded from the law (k* is only a bound there)"
        )
    if edge.any():
        notes.append(
            f"{int(edge.sum())} cell(s) excluded: the smooth fit put k* on the edge of the tested range"
        )
    if missing.any():
        notes.append(
            f"{int(missing.sum())} cell(s) excluded: no k* (too few usable k values for the smooth fit)"
        )
    d = c.loc[keep, list(LAW_FACTORS) + ["n_experts"]].copy()
    d["k"] = k[keep].to_numpy()
    d["y"] = np.log(d["k"])
    d["var"] = var[keep].to_numpy()
    for f in LAW_FACTORS:
        d[_term(f)] = np.log(d[f].astype(float))
    return d.reset_index(drop=True), np.log(boot[keep.to_numpy()]), notes


def _gaussian_ic(resid_w: np.ndarray, weights: np.ndarray, n_params: int) -> tuple[float, float, float]:
    """Log-likelihood, AIC, BIC of a Gaussian (W)LS fit from its whitened residuals (statsmodels' formula)."""
    n = len(resid_w)
    ssr = max(float(np.sum(resid_w**2)), 1e-300)
    llf = -n / 2 * np.log(ssr) - (1 + np.log(np.pi / (n / 2))) * n / 2 + 0.5 * np.sum(np.log(weights))
    return llf, -2 * llf + 2 * n_params, -2 * llf + np.log(n) * n_params


def _design(d: pd.DataFrame, factors: list[str]) -> pd.DataFrame:
    return sm.add_constant(d[[_term(f) for f in factors]], has_constant="add")


def _fit(y, X, weights, method):
    model = sm.WLS(y, X, weights=weights) if method == "wls" else sm.OLS(y, X)
    return model.fit(cov_type="HC3") if method == "hc3" else model.fit()


def _alternatives(d, factors, weights, method, main) -> pd.DataFrame:
    """Compare the power law with k* proportional to s, an interaction model and a form bounded by T."""
    y, sw = d["y"].to_numpy(), np.sqrt(weights)
    rows = [
        ("power law", len(main.params), *_gaussian_ic(sw * main.resid.to_numpy(), weights, len(main.params)))
    ]
    if "complexity" in factors:
        r = y - d[_term("complexity")].to_numpy()
        fit = sm.WLS(r, np.ones((len(y), 1)), weights=weights).fit()
        rows.append(("k* proportional to s", 1, *_gaussian_ic(sw * fit.resid, weights, 1)))
    X = _design(d, factors)
    centred = {f: d[_term(f)] - d[_term(f)].mean() for f in factors}
    for a, b in itertools.combinations(factors, 2):
        X[f"{a}:{b}"] = centred[a] * centred[b]
    if X.shape[1] > len(main.params) and len(y) > X.shape[1]:
        fit = sm.WLS(y, X, weights=weights).fit()
        rows.append(("with interactions", X.shape[1], *_gaussian_ic(sw * fit.resid, weights, X.shape[1])))
    if "complexity" in factors:
        # Affine in s: k* = (a + b s) * prod_f f^b_f over the other factors; nonlinear least squares
        # on log k*, started from the OLS line of k* on s.
        s_ = d["complexity"].to_numpy(dtype=float)
        Xo = _design(d, [f for f in factors if f != "complexity"]).to_numpy()[:, 1:]
        a0, b0 = np.polyfit(s_, np.exp(y), 1)[::-1]

        def resid_affine(theta):
            lin = np.maximum(theta[0] + theta[1] * s_, 1e-9)
            return sw * (y - np.log(lin) - Xo @ theta[2:])

        sol = optimize.least_squares(resid_affine, np.r_[max(a0, 0.1), b0, np.zeros(Xo.shape[1])])
        n_aff = 2 + Xo.shape[1]
        rows.append(("affine in s", n_aff, *_gaussian_ic(sol.fun, weights, n_aff)))
    # Bounded by T: k* = T / (1 + exp(-eta)), eta linear in the logs; nonlinear least squares.
    Xb, log_t = _design(d, factors).to_numpy(), np.log(d["n_experts"].to_numpy(dtype=float))
    z = np.clip(np.exp(y - log_t), 1e-3, 1 - 1e-3)
    start = np.linalg.lstsq(Xb, np.log(z / (1 - z)), rcond=None)[0]

    def resid(theta):
        return sw * (y - (log_t - np.logaddexp(0.0, -(Xb @ theta))))

    sol = optimize.least_squares(resid, start, method="lm")
    rows.append(("bounded by n_experts", Xb.shape[1], *_gaussian_ic(sol.fun, weights, Xb.shape[1])))
    out = pd.DataFrame(rows, columns=["model", "n_params", "llf", "aic", "bic"])
    out["delta_aic"] = out["aic"] - out["aic"].min()
    out["delta_bic"] = out["bic"] - out["bic"].min()
    return out


def _lolo(d, factors, weights, method) -> tuple[pd.DataFrame, list[str]]:
    """Leave one level of a factor out, refit, predict the held-out cells (log-space errors)."""
    rows, notes = [], []
    for f in factors:
        levels = np.sort(d[f].unique())
        if len(levels) < 3:
            notes.append(f"leave-one-level-out skipped for {f}: {len(levels)} levels leave too few to refit")
            continue
        for level in levels:
            held = (d[f] == level).to_numpy()
            X = _design(d, factors)
            if (~held).sum() <= X.shape[1]:
                continue
            fit = _fit(d["y"][~held], X[~held], weights[~held], method)
            err = d["y"][held].to_numpy() - fit.predict(X[held]).to_numpy()
            kind = "extrapolation" if level in (levels[0], levels[-1]) else "interpolation"
            rows.append(
                (
                    f,
                    level,
                    kind,
                    int((~held).sum()),
                    int(held.sum()),
                    float(np.sqrt(np.mean(err**2))),
                    float(np.max(np.abs(err))),
                )
            )
    cols = ["factor", "level", "kind", "n_fit", "n_held", "rmse_log", "max_abs_log_err"]
    return pd.DataFrame(rows, columns=cols), notes


def _diagnostics(res, X) -> dict:
    resid = np.asarray(res.resid) * np.sqrt(getattr(res.model, "weights", 1.0))
    out = {"resid_sd": float(np.std(resid, ddof=X.shape[1])), "max_abs_resid": float(np.max(np.abs(resid)))}
    if len(resid) >= 3:
        out["shapiro_p"] = float(stats.shapiro(resid).pvalue)
    if X.shape[1] > 1 and len(resid) > X.shape[1] + 1:
        out["breusch_pagan_p"] = float(het_breuschpagan(resid, X)[1])
    try:
        out["max_cooks_distance"] = float(np.nanmax(res.get_influence().cooks_distance[0]))
    except Exception:  # influence is undefined for some degenerate fits; the rest still holds
        out["max_cooks_distance"] = float("nan")
    return out


def fit_law(cf: CellFits, method: str = "hc3", k_source: str = "continuous", diagnose: bool = True) -> LawFit:
    """Fit the law of k* on the usable cells of `cf`; see the module docstring for the choices."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: allowed values are {', '.join(METHODS)}")
    d, boot, notes = law_data(cf, k_source)
    factors = [f for f in LAW_FACTORS if d[f].nunique() > 1]
    for f in LAW_FACTORS:
        if f not in factors and len(d):
            notes.append(f"{f} has one level among the usable cells: its exponent is dropped from the law")
    n_params = 1 + len(factors)
    if len(d) <= n_params:
        raise LawNotIdentified(
            f"law not fitted: {len(d)} usable cell(s) for {n_params} parameter(s) "
            f"({len(cf.cells)} cells, {int((cf.cells['censored'] != '').sum())} censored)"
        )
    var = d["var"].to_numpy()
    if method == "wls" and not np.isfinite(var).all():
        notes.append("no bootstrap variance of k* (one seed or no resamples): WLS replaced by OLS")
        method = "ols"
    if method == "wls":
        pos = var[var > 0]
        floor = max(0.1 * float(np.median(pos)), 1e-8) if len(pos) else 1.0
        weights = 1.0 / np.maximum(var, floor)
    else:
        weights = np.ones(len(d))
    X = _design(d, factors)
    res = _fit(d["y"], X, weights, method)
    ci = res.conf_int(0.05)

    boot_ci = {}
    ok = np.isfinite(boot).all(axis=0) if boot.size else np.zeros(0, bool)
    if ok.sum() >= 20:
        sw = np.sqrt(weights)
        coefs = np.linalg.pinv(sw[:, None] * X.to_numpy()) @ (sw[:, None] * boot[:, ok])
        boot_ci = {t: np.quantile(coefs[i], [0.025, 0.975]) for i, t in enumerate(X.columns)}
        if (~ok).any():
            notes.append(
                f"{int((~ok).sum())} bootstrap resample(s) lacking a k* in some cell left out of the law's"
                " bootstrap"
            )
    rows = []
    for f in LAW_FACTORS:
        t = _term(f)
        if f in factors:
            b = boot_ci.get(t, (np.nan, np.nan))
            rows.append(
                (f, res.params[t], res.bse[t], ci.loc[t, 0], ci.loc[t, 1], b[0], b[1], d[f].nunique())
            )
        else:
            rows.append((f, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, d[f].nunique() if len(d) else 0))
    exps = pd.DataFrame(
        rows,
        columns=["factor", "estimate", "se", "ci_low", "ci_high", "boot_ci_low", "boot_ci_high", "n_levels"],
    )
    llf, aic, bic = _gaussian_ic(np.sqrt(weights) * res.resid.to_numpy(), weights, len(res.params))
    alternatives = lolo = pd.DataFrame()
    diagnostics: dict = {}
    if diagnose:
        alternatives = _alternatives(d, factors, weights, method, res)
        lolo, lolo_notes = _lolo(d, factors, weights, method)
        notes += lolo_notes
        diagnostics = _diagnostics(res, X)
    return LawFit(
        exponents=exps,
        intercept=float(res.params["const"]),
        r2=float(res.rsquared),
        aic=aic,
        bic=bic,
        n_cells=len(d),
        method=method,
        k_source=k_source,
        factors=factors,
        data=d.assign(weight=weights),
        result=res,
        alternatives=alternatives,
        lolo=lolo,
        diagnostics=diagnostics,
        notes=notes,
    )


def law_band(law: dict, grid: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """The law's k* and the (1 - alpha) confidence band of its mean at the rows of `grid` (columns named
    after the factors), from the law block of `optimal_k.json` (params, cov_params, use_t, df_resid):
    the same numbers as statsmodels' `get_prediction(...).summary_frame(alpha)`, without refitting."""
    names = list(law["params"])
    X = np.column_stack([np.ones(len(grid)) if n == "const" else np.log(grid[n.removeprefix("log_")]
                                                                        .to_numpy(float)) for n in names])
    beta = np.array([law["params"][n] for n in names])
    cov = np.asarray(law["cov_params"], dtype=float)
    mean = X @ beta
    se = np.sqrt(np.einsum("ij,jk,ik->i", X, cov, X))
    q = stats.t.ppf(1 - alpha / 2, law["df_resid"]) if law["use_t"] else stats.norm.ppf(1 - alpha / 2)
    out = grid.copy()
    out["k_star"], out["ci_lo"], out["ci_hi"] = np.exp(mean), np.exp(mean - q * se), np.exp(mean + q * se)
    return out


def wald_tests(law: LawFit, predicted: dict[str, float]) -> pd.DataFrame:
    """Test each fitted exponent against a predicted value (t tests), and all of them jointly (Wald).

    `predicted` maps factor names (complexity, n_train, width) to the predicted exponent; factors that
    were dropped from the law, or have no prediction, are skipped.
    """
    rows, hyps = [], []
    for f in law.factors:
        if f not in predicted or not np.isfinite(predicted[f]):
            continue
        h = f"{_term(f)} = {float(predicted[f])!r}"
        t = law.result.t_test(h)
        hyps.append(h)
        rows.append(
            (
                f,
                float(predicted[f]),
                float(law.result.params[_term(f)]),
                float(np.squeeze(t.tvalue)),
                float(np.squeeze(t.pvalue)),
            )
        )
    out = pd.DataFrame(rows, columns=["hypothesis", "predicted", "estimate", "statistic", "p_value"])
    if len(hyps) > 1:
        w = law.result.wald_test(", ".join(hyps), scalar=True)
        out.loc[len(out)] = ("joint", np.nan, np.nan, float(w.statistic), float(w.pvalue))
    return out
