"""Figure 2 (`kstar_complexity`) draws one labelled line per arm the fits fitted, from a small synthetic
fits output (`kstar_arms.parquet` made by `fits.kstar_arms` from hand-made cells and laws): the
learned router, the oracle router (its k* the argmin, flat past s r by construction) and the teacher's
skills as experts (no law), beside the theory's line; it refuses a table that lacks an arm the fits
have, and draws a store of one arm."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from figures import Inputs, kstar_complexity
from figures.inputs import InputError
from fits import kstar_arms
from fits.kstar_arms import TABLE, kstar_arms_table

S, M, H, T = (2, 4, 6), (150, 500), 4, 16
ARMS = {"learned": "continuous", "oracle": "discrete", "teacher_experts": "continuous"}


def _cells(scale: float, censored_at: int | None = None) -> pd.DataFrame:
    """One row per (s, m) at width H and T experts: k* = scale * s (both estimands), a CI of +-20 %."""
    rows = []
    for s in S:
        for m in M:
            k = min(scale * s, T)
            flag = "high" if s == censored_at else ""
            rows.append({"complexity": s, "n_train": m, "width": H, "n_experts": T, "k_star": k,
                         "k_star_ci": (0.8 * k, 1.2 * k), "censored": flag, "k_star_cont": k,
                         "k_star_cont_ci": (0.8 * k, 1.2 * k), "cont_at_edge": False})
    return pd.DataFrame(rows)


def _law(b_s: float, b0: float) -> dict:
    """A law as optimal_k.json has it (what `fits.law.law_band` reads): log k* = b0 + b_s log s."""
    return {"params": {"const": b0, "log_complexity": b_s}, "cov_params": [[0.01, 0.0], [0.0, 0.01]],
            "use_t": True, "df_resid": 4.0}


def _inputs(tmp_path, arms=tuple(ARMS), by_router=True, table_arms=None) -> Inputs:
    """Inputs over a synthetic fits output of `arms` (`table_arms`: those kstar_arms.parquet holds)."""
    spec = {"learned": (_cells(2.0), _law(1.0, np.log(2.0)), "continuous"),
            "oracle": (_cells(2.0), _law(1.0, np.log(2.0)), "discrete"),
            "teacher_experts": (_cells(4.0, censored_at=6), None, "continuous")}
    fits = tmp_path / "fits"
    fits.mkdir()
    kstar_arms_table({a: spec[a] for a in (table_arms or arms)}).to_parquet(fits / TABLE)
    inputs = Inputs(fits=fits, results=tmp_path / "results")
    # what data() reads of optimal_k.json and of the results store, without writing either
    inputs.__dict__["fits"] = {"arm": arms[0], "metric": "test_mse_ood",
                               "by_router": {a: {} for a in arms} if by_router else None}
    inputs.__dict__["task_kwargs"] = {"d": 8, "n_skills": 8, "holdout_frac": 0.25}
    return inputs


def _arm_lines(ax) -> dict[str, list]:
    """{arm: [its labelled lines]} of one panel (each arm's line carries gid 'arm:<name>')."""
    out: dict[str, list] = {}
    for line in ax.get_lines():
        gid = line.get_gid() or ""
        if gid.startswith("arm:"):
            out.setdefault(gid.removeprefix("arm:"), []).append(line)
    return out


def test_one_labelled_line_per_arm_in_every_panel(tmp_path):
    df = kstar_complexity.data(_inputs(tmp_path))
    labels = df[df["kind"] == "cell"].groupby("arm", sort=False)["label"].first()
    assert list(labels.index) == list(ARMS)  # every arm, in the fits' order
    assert labels["learned"] == "learned router: smooth-fit $k^*$"
    assert labels["oracle"] == ("oracle router: argmin $k$ (its error is flat past k = s r by construction; "
                                "$r$ = 2)")
    assert labels["teacher_experts"] == ("teacher's skills as experts, learned router: smooth-fit $k^*$; "
                                         "law not fitted")
    assert set(df.loc[df["kind"] == "law", "arm"]) == {"learned", "oracle"}
    assert (df.loc[df["kind"] == "theory", "label"] == kstar_complexity.THEORY).all()

    fig = kstar_complexity.plot(df)
    panels = [ax for ax in fig.axes if ax.get_title(loc="left")]
    assert [ax.get_title(loc="left") for ax in panels] == [f"$m$ = {m}" for m in M]
    for ax in panels:
        lines = _arm_lines(ax)
        assert sorted(lines) == sorted(ARMS), "one line per arm"
        for arm, (line,) in lines.items():
            assert line.get_label() == labels[arm]
            m = float(ax.get_title(loc="left").split("= ")[1])
            cells = df[(df["kind"] == "cell") & (df["arm"] == arm) & (df["n_train"] == m)]
            np.testing.assert_allclose(line.get_ydata(), cells.sort_values("complexity")["k_star"])
        theory = [line for line in ax.get_lines() if line.get_label() == kstar_complexity.THEORY]
        assert len(theory) == 1
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert all(legend.count(label) == 1 for label in [*labels, kstar_complexity.THEORY])


def test_an_arm_missing_from_the_table_is_refused(tmp_path):
    """The fits have three arms, the table two (fits of other cells): no figure that drops an arm."""
    with pytest.raises(InputError, match="other fits"):
        kstar_complexity.data(_inputs(tmp_path, table_arms=("learned", "oracle")))


def test_a_figure_without_an_arm_fails_the_per_arm_check(tmp_path):
    """The per-arm check of the first test is not vacuous: a figure drawn without the oracle fails it."""
    df = kstar_complexity.data(_inputs(tmp_path))
    fig = kstar_complexity.plot(df[df["arm"] != "oracle"])
    ax = next(ax for ax in fig.axes if ax.get_title(loc="left"))
    assert sorted(_arm_lines(ax)) != sorted(ARMS)


def test_a_store_of_one_arm(tmp_path):
    """Fits without routing controls (no `by_router`): the one top-level arm and the theory."""
    df = kstar_complexity.data(_inputs(tmp_path, arms=("learned",), by_router=False))
    assert set(df["kind"]) == {"cell", "law", "theory"}
    assert set(df["arm"].dropna()) == {"learned"}
    fig = kstar_complexity.plot(df)
    for ax in (ax for ax in fig.axes if ax.get_title(loc="left")):
        assert sorted(_arm_lines(ax)) == ["learned"]


def test_the_figure_reads_the_table_the_fits_write():
    assert kstar_complexity.TABLE == kstar_arms.TABLE
    assert list(kstar_complexity.COLUMNS) == kstar_arms.COLUMNS


def test_table_marks_censored_cells_out_of_the_law():
    table = kstar_arms_table({"teacher_experts": (_cells(4.0, censored_at=6), None, "continuous")})
    cells = table[table["kind"] == "cell"]
    assert list(cells["in_law"]) == [s != 6 for s in cells["complexity"]]
    assert set(cells.loc[cells["complexity"] == 6, "censored"]) == {"high"}
    assert not (table["kind"] == "law").any()
