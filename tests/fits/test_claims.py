"""fits.claims: every results number of README.md and docs/results.md is what the shipped reference
results give (the check reads docs/reference/, it reruns nothing), and a number changed by hand fails it."""

from __future__ import annotations

import re

import pytest

from fits import claims


@pytest.mark.parametrize("rel", claims.DOCS)
def test_every_claims_block_says_what_the_reference_files_say(rel):
    text = (claims.ROOT / rel).read_text()
    assert claims.MARK.search(text), f"{rel} has no claims block"
    _, changed = claims.render(text)
    assert changed == [], f"{rel}: stale blocks {changed} (run python -m fits.claims)"


def test_a_number_changed_by_hand_is_caught_and_named():
    text = (claims.ROOT / "README.md").read_text()
    block = claims.MARK.search(text)
    body = block["body"]
    digit = re.search(r"\d", body)
    edited = body[:digit.start()] + str((int(digit.group()) + 1) % 10) + body[digit.end():]
    _, changed = claims.render(text.replace(body, edited))
    assert changed == [block["name"]]
    assert claims.main(["--check"]) == 0  # the shipped files themselves are untouched


def test_an_unknown_block_is_named_with_the_known_ones():
    with pytest.raises(KeyError, match="'nope'.*answers"):
        claims.render("<!-- claims:nope -->\nx\n<!-- /claims:nope -->")


def test_the_direction_in_m_counts_every_step_of_the_law_cells_once():
    """Every step between neighbouring m levels is counted once per arm, error and estimand."""
    for _, arm, id_ref, ood_ref in claims.LAW_ARMS:
        for ref in (id_ref, ood_ref):
            c = claims.cells(ref, arm)
            steps = sum(g["n_train"].nunique() - 1 for _, g in c.groupby(["complexity", "width"]))
            d = claims.direction_rows(ref, arm)
            for est in ("k_enough", "k_star"):
                e = d[d["estimand"] == est]
                assert int(e[["towards", "away", "unchanged"]].to_numpy().sum()) == steps


def test_the_readme_first_screen_is_at_most_60_lines():
    lines = (claims.ROOT / "README.md").read_text().splitlines()
    assert lines.index("## Entry points") <= 60
