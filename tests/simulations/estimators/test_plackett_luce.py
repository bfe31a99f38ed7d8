"""Plackett-Luce sampling against its closed form: the frequencies of Gumbel-top-k samples match the
probabilities `log_prob` gives every ranked selection (analytic against Monte-Carlo), per-model k is
respected, and the log-probability's gradient is the score the estimator needs."""

from __future__ import annotations

import itertools

import torch

from simulations.estimators import plackett_luce as pl


def test_sample_frequencies_match_the_closed_form():
    T, k, n = 4, 2, 40_000
    logits = torch.tensor([1.0, 0.2, -0.5, 0.0], dtype=torch.float64)
    log_w = torch.log_softmax(logits, 0).view(1, T, 1).expand(1, T, n).contiguous()
    e = torch.empty(1, T, n, dtype=torch.float64).exponential_(generator=torch.Generator().manual_seed(0))
    order, valid = pl.gumbel_topk(log_w, e, torch.tensor([k]))
    assert valid.all()
    seen = order[0].T.tolist()  # n ranked pairs
    for seq in itertools.permutations(range(T), k):
        freq = sum(s == list(seq) for s in seen) / n
        lp = pl.log_prob(log_w[:, :, :1], torch.tensor(seq).view(1, k, 1), valid[:, :, :1])
        p = float(lp.exp())
        assert abs(freq - p) < 4 * (p * (1 - p) / n) ** 0.5 + 1e-3, (seq, freq, p)


def test_probabilities_of_every_ranked_selection_sum_to_one():
    T, k = 5, 3
    log_w = torch.randn(1, T, 1, dtype=torch.float64)
    seqs = list(itertools.permutations(range(T), k))
    order = torch.tensor(seqs).T.unsqueeze(0)  # [1, k, n_seq]
    lp = pl.log_prob(log_w.expand(1, T, len(seqs)), order, torch.ones(1, k, 1, dtype=torch.bool))
    assert torch.allclose(lp.exp().sum(), torch.tensor(1.0, dtype=torch.float64))


def test_per_model_k_and_the_selection_mask():
    M, T, n = 3, 6, 7
    k = torch.tensor([1, 3, 6])
    log_w = torch.randn(M, T, n)
    e = torch.empty(2, M, T, n).exponential_()  # two samples
    order, valid = pl.gumbel_topk(log_w, e, k)
    mask = pl.selection_mask(order, valid, T)
    assert mask.shape == (2, M, T, n)
    assert (mask.sum(-2) == k.view(1, M, 1)).all()
    # places past a model's k add nothing to its log-probability: at k = 1 it is that of the first draw
    lp = pl.log_prob(log_w, order, valid)
    first = log_w[0].gather(0, order[:, 0, 0]) - log_w[0].logsumexp(0)  # [2, n]
    assert torch.allclose(lp[:, 0], first, atol=1e-5)
    assert (lp <= 1e-6).all()


def test_the_gradient_of_the_log_probability_is_the_score():
    # d/dl_j log P(seq) for a softmax PL is 1[j in seq] - sum over places of the remaining share of j
    T = 4
    logits = torch.tensor([0.3, -0.1, 0.8, 0.0], dtype=torch.float64, requires_grad=True)
    log_w = torch.log_softmax(logits, 0).view(1, T, 1)
    seq = [2, 0]
    valid = torch.ones(1, 2, 1, dtype=torch.bool)
    pl.log_prob(log_w, torch.tensor(seq).view(1, 2, 1), valid).sum().backward()
    p = torch.softmax(logits.detach(), 0)
    expected = torch.zeros(T, dtype=torch.float64)
    left = torch.ones(T, dtype=torch.bool)
    for j in seq:
        expected[j] += 1
        expected -= torch.where(left, p, torch.zeros_like(p)) / p[left].sum()
        left[j] = False
    assert torch.allclose(logits.grad, expected)
