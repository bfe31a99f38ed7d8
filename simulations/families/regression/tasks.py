r"""The synthetic compositional regression task (definition mirrored in docs/tasks.md).

Parameters: S = n_skills, s = complexity, d = d_in, w = teacher_width, sigma = noise,
rho = holdout_frac, and the task seed.

1. Inputs: x ~ N(0, I_d).
2. Skills, j = 1..S:  g_j(x) = (v_j . tanh(W_j x + b_j) - mu_j) / sd_j,
   W_j in R^{w x d} with entries N(0, 1/d), b_j entries N(0, 1), v_j in R^w entries N(0, 1/w);
   mu_j, sd_j are the mean and standard deviation of the raw skill on a reference sample of n_ref
   inputs, so E g_j = 0 and Var g_j = 1 on the input distribution.
3. Teacher router: z(x) = U^T x, U in R^{d x S}; A(x) = indices of the s largest entries of z(x).
   If S <= d, U has orthonormal columns (z ~ N(0, I_S), A(x) uniform over the binom(S, s) subsets);
   otherwise its columns are independent unit vectors.
4. Target: y = (G(x) - m_G) / sd_G + sigma * eps,  G(x) = sum_{j in A(x)} g_j(x),  eps ~ N(0, 1),
   m_G and sd_G the mean and standard deviation of G on the reference sample: the noise-free target
   has variance 1 for every s, and target_var = 1 + sigma^2.
5. Compositional split: H_s, a set of round(rho * binom(S, s)) combinations drawn uniformly among the
   draws that leave every skill in at least one training combination (empty if there is none, or for
   s = 1, s = S), never appears in training. Train, validation and ID test inputs are x conditioned on
   A(x) not in H_s; OOD test inputs on A(x) in H_s (a fresh ID sample when H_s is empty).
6. Determinism: skills and U depend on (seed, S, d, w); H_s on (seed, S, s); each split is the
   accepted prefix of its own random stream keyed by (seed, S, d, w, s, split), drawn in fixed-size
   chunks, so a training set of size m is the first m points of every larger one.

The contextual task (TaskSpec.task = "contextual", simulations.families.regression.contextual) is this
class with the router reading a context c drawn independently of x; the hooks it overrides are grouped
below ("what a subclass changes"). The variants' names and classes are the task registry's
(simulations.families.regression.task_registry: `make_task` builds a spec's teacher).
7. Mixed complexity (`complexity_mix`, a non-empty tuple of levels; then s = max of it): each point's
   own s_i is drawn uniformly from the levels, from the split's stream after its x and eps (so the
   streams stay prefix-stable); A(x) is the top s_i scores, the target is normalised per level
   (m_G(s), sd_G(s) on the reference sample: each level's clean target has mean 0 and variance 1),
   and the held-out combinations are the union over the levels of H_s (a point is held out when its
   own A(x) is in H_{s_i}). The draws of x and eps are those of the unmixed stream with the same keys.
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from simulations.families.regression.config import TaskConfig
from simulations.families.regression.task_registry import COMPOSITIONAL, check_task

SPLITS = {"train": 1, "val": 2, "test_id": 3, "test_ood": 4}
_CONFIG = TaskConfig()  # the task settings' defaults, which are TaskSpec's (one default each)
_CHUNK = 4096  # fixed draw size: keeps prefixes of the streams independent of the requested size
_MAX_CHUNKS = 2000
_COVER_TRIES = 1000


@dataclass(frozen=True)
class TaskSpec:
    """One task instance; `seed` fixes everything (see the module docstring). The task settings'
    defaults are the grid config's (TaskConfig)."""

    n_skills: int
    complexity: int
    d_in: int
    teacher_width: int = _CONFIG.teacher_width
    noise: float = _CONFIG.noise
    holdout_frac: float = _CONFIG.holdout_frac
    seed: int = 0
    n_ref: int = 50_000
    task: str = _CONFIG.task  # a name of the task registry (its make_task builds the teacher)
    d_context: int = _CONFIG.d_context  # the contextual task's context width (unused by the others)
    # levels of a mixed-complexity task (module docstring, 7.)
    complexity_mix: tuple[int, ...] = tuple(_CONFIG.complexity_mix)

    def __post_init__(self) -> None:
        if not 1 <= self.complexity <= self.n_skills:
            raise ValueError(f"complexity must be in 1..n_skills={self.n_skills}, got {self.complexity}")
        object.__setattr__(self, "complexity_mix", tuple(int(s) for s in self.complexity_mix))
        mix = self.complexity_mix
        if mix and (min(mix) < 1 or max(mix) != self.complexity or len(set(mix)) != len(mix)):
            raise ValueError(f"complexity_mix must be distinct levels in 1..complexity={self.complexity} "
                             f"with complexity its largest, got {list(mix)}")
        if min(self.d_in, self.teacher_width, self.n_ref) < 1 or self.noise < 0:
            raise ValueError("d_in, teacher_width, n_ref must be >= 1 and noise >= 0")
        if not 0 <= self.holdout_frac < 1:
            raise ValueError(f"holdout_frac must be in [0, 1), got {self.holdout_frac}")
        check_task(self.task)
        if self.d_context < 1:
            raise ValueError(f"d_context must be >= 1, got {self.d_context}")


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


# In-process caches (the grid's local executor runs every bundle in one process; each Ray worker has
# its own). The reference sample and its raw skills depend on (seed, S, d, w, n_ref) only, so the tasks
# of all complexities share them; a drawn split is shared by every bundle holding the same task, and
# serves any shorter request. Both hold exactly the arrays an uncached call computes (the same
# operations on the same inputs).
_REFERENCE: OrderedDict[tuple, tuple[np.ndarray, np.ndarray]] = OrderedDict()
_SAMPLES: OrderedDict[tuple, tuple] = OrderedDict()  # (spec, split) -> (n, levels, skills, arrays)
_REFERENCE_MAX, _SAMPLES_MAX = 8, 512


def _remember(cache: OrderedDict, key: tuple, limit: int, make, usable=None):
    """cache[key], made (and the oldest entry dropped past `limit`) when absent or, with `usable`, when
    the kept value cannot serve the request; most recently used last."""
    value = cache.get(key)
    if value is None or (usable is not None and not usable(value)):
        value = cache[key] = make()
        if len(cache) > limit:
            cache.popitem(last=False)
    cache.move_to_end(key)
    return value


def _read_only(arrays: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    for array in arrays:
        array.flags.writeable = False  # shared between callers
    return arrays


def _reference_sample(task: CompositionalTask, *key: int) -> tuple[np.ndarray, np.ndarray]:
    """x_ref [n_ref, d] and its raw skills, cached by (seed, S, d, w, n_ref)."""
    seed, S, d, w, n_ref = key

    def make():
        x_ref = _rng(seed, 5, S, d, w).standard_normal((n_ref, d))
        return _read_only((x_ref, task._raw_skills(x_ref)))

    return _remember(_REFERENCE, key, _REFERENCE_MAX, make)


def sample_cached(task: CompositionalTask, split: str, n: int, levels: bool = False, skills: bool = False
                  ) -> tuple[np.ndarray, ...]:
    """task.sample(split, n, levels, skills), cached in-process per (task, split), read-only. A request
    is served from the kept draw when that draw is as long and holds what it asks for: its first n
    points are the same arrays (a stream's prefix does not depend on the size drawn, `_CHUNK`)."""
    def draw() -> tuple:
        return n, levels, skills, _read_only(task.sample(split, n, levels=levels, skills=skills))

    kept = _remember(_SAMPLES, (task.spec, split), _SAMPLES_MAX, draw,
                     usable=lambda k: k[0] >= n and (k[1] or not levels) and (k[2] or not skills))
    x, y, *rest = kept[3]
    out = (x[:n], y[:n]) + ((rest[0][:n],) if levels else ())
    return out + ((rest[-1][:n],) if skills else ())


def clear_caches() -> None:
    """Empty the in-process caches (benchmarks use it to time cold runs)."""
    _REFERENCE.clear()
    _SAMPLES.clear()


def unit_columns(raw: np.ndarray) -> np.ndarray:
    """A teacher router matrix from a Gaussian draw [n, S]: orthonormal columns when S <= n (the sign
    fix makes the QR factorisation unique), else the columns scaled to unit norm."""
    if raw.shape[1] <= raw.shape[0]:
        q, r = np.linalg.qr(raw)
        return q * np.sign(np.diag(r))
    return raw / np.linalg.norm(raw, axis=0, keepdims=True)


def combo_code(combo) -> int:
    """The bitmask of a skill combination (set of skill indices)."""
    return sum(1 << int(j) for j in combo)


class CompositionalTask:
    """The teacher of one TaskSpec: skills, router, held-out combinations and the data streams."""

    name = COMPOSITIONAL  # the TaskSpec.task this class builds (its name in the task registry)
    has_context = False  # whether the student's router reads a context besides x

    def __init__(self, spec: TaskSpec):
        if spec.task != self.name:
            raise ValueError(f"{type(self).__name__} builds task {self.name!r}, got a spec of task "
                             f"{spec.task!r} (make_task picks the class)")
        self.spec = spec
        S, d, w = spec.n_skills, spec.d_in, spec.teacher_width
        rng = _rng(spec.seed, 0, S, d, w)
        self.W = rng.normal(0.0, 1.0 / math.sqrt(d), size=(S, w, d))
        self.b = rng.normal(0.0, 1.0, size=(S, w))
        self.v = rng.normal(0.0, 1.0 / math.sqrt(w), size=(S, w))
        self.U = self._router_matrix(rng)
        x_ref, raw_skills = _reference_sample(self, spec.seed, S, d, w, spec.n_ref)
        self.mu = raw_skills.mean(axis=0)
        self.sd = raw_skills.std(axis=0)
        # = self._composed(u_ref), with the raw skills computed once
        g = (raw_skills - self.mu) / self.sd
        u_ref = self._reference_points(x_ref)
        g_ref = np.take_along_axis(g, self.active_sets(u_ref), axis=1).sum(axis=1)
        self.mean_G = float(g_ref.mean())
        self.sd_G = float(g_ref.std())
        self.level_moments = self._level_moments(u_ref, g) if spec.complexity_mix else {}

    # -- what a subclass changes (simulations.families.regression.contextual) -------------------------
    @property
    def input_width(self) -> int:
        """Width of a point u (what the student reads): d_in here, the skills' inputs being all of u."""
        return self.spec.d_in

    def _router_matrix(self, rng: np.random.Generator) -> np.ndarray:
        """U [d, S], drawn from the skills' generator after the skills."""
        return unit_columns(rng.normal(size=(self.spec.d_in, self.spec.n_skills)))

    def _reference_points(self, x_ref: np.ndarray) -> np.ndarray:
        """The reference sample's points u from its inputs x_ref (here u = x)."""
        return x_ref

    def _stream_key(self, split: str) -> tuple[int, ...]:
        """The key of a split's random stream."""
        sp = self.spec
        return sp.seed, 2, sp.n_skills, sp.d_in, sp.teacher_width, sp.complexity, SPLITS[split]

    def skill_inputs(self, u: np.ndarray) -> np.ndarray:
        """What the skills read of points u: x (here all of u)."""
        return u

    def scores(self, x: np.ndarray) -> np.ndarray:
        """z(x) = U^T x: [N, S] teacher router scores (A(x) holds the s largest)."""
        return x @ self.U

    # -- the teacher ---------------------------------------------------------------------------------
    def _raw_skills(self, x: np.ndarray) -> np.ndarray:
        h = np.tanh(np.einsum("swd,nd->nsw", self.W, x) + self.b)
        return np.einsum("nsw,sw->ns", h, self.v)

    def skills(self, x: np.ndarray) -> np.ndarray:
        """g(x): [N, S], each column mean 0 and variance 1 on N(0, I_d) (x: points, of which the skills
        read `skill_inputs`)."""
        return (self._raw_skills(self.skill_inputs(x)) - self.mu) / self.sd

    def skill_experts(self, x: np.ndarray, n_experts: int, s: np.ndarray | None = None) -> np.ndarray:
        """[N, T] the skills as experts of a top-k student with T = r * S: expert e = rep * S + j outputs
        (s * g_j(x) - m_G) / sd_G, so the s experts of A(x) with gates 1 / s give the clean target. For a
        mixed task, `s` [N] gives each point's level, with its own m_G(s_i) and sd_G(s_i)."""
        S = self.spec.n_skills
        if n_experts % S:
            raise ValueError(f"teacher experts need n_experts to be a multiple of n_skills={S}, "
                             f"got {n_experts}")
        if s is not None and self.spec.complexity_mix:
            mean, sd = self._moments_at(s)
            one = (np.asarray(s)[:, None] * self.skills(x) - mean[:, None]) / sd[:, None]
            return np.tile(one, (1, n_experts // S))
        s = self.spec.complexity
        one = (s * self.skills(x) - self.mean_G) / self.sd_G
        return np.tile(one, (1, n_experts // S))

    @cached_property
    def _route_free_fit(self) -> tuple[np.ndarray, float]:
        """The route-free baseline's mix, least-squares coefficients (intercept first) of the true skills
        on the first 20,000 ID test points, and its NMSE there (fitted once for both baselines)."""
        _, y, g = sample_cached(self, "test_id", 20_000, skills=True)
        design = self._route_free_design(g)
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        return coef, float(np.mean((y - design @ coef) ** 2) / self.target_var)

    @staticmethod
    def _route_free_design(g: np.ndarray) -> np.ndarray:
        return np.column_stack([np.ones(len(g)), g])

    @cached_property
    def route_free_nmse(self) -> float:
        """NMSE of the best fixed linear mix of the true skills (intercept included, no routing) on
        20,000 ID points: the share of the target that composing skills per input, rather than any
        fixed blend of them, accounts for. Roughly 1 - s / S (docs/tasks.md, "The route-free
        baseline")."""
        return self._route_free_fit[1]

    @cached_property
    def route_free_nmse_ood(self) -> float:
        """The route-free baseline on the OOD split: the same mix (fitted on the same 20,000 ID points as
        `route_free_nmse`) evaluated on 20,000 OOD points, so OOD errors divide by a baseline of their
        own split (docs/tasks.md, "The route-free baseline")."""
        _, y, g = sample_cached(self, "test_ood", 20_000, skills=True)
        coef = self._route_free_fit[0]
        return float(np.mean((y - self._route_free_design(g) @ coef) ** 2) / self.target_var)

    def active_sets(self, x: np.ndarray) -> np.ndarray:
        """A(x): [N, s] indices of the s largest router scores, sorted ascending."""
        s = self.spec.complexity
        z = self.scores(x)
        top = np.argpartition(-z, s - 1, axis=1)[:, :s]
        return np.sort(top, axis=1)

    def codes(self, x: np.ndarray) -> np.ndarray:
        """Bitmask of A(x) per input."""
        return np.bitwise_or.reduce(np.left_shift(1, self.active_sets(x)), axis=1)

    def _composed(self, x: np.ndarray, g: np.ndarray | None = None) -> np.ndarray:
        g = self.skills(x) if g is None else g
        return np.take_along_axis(g, self.active_sets(x), axis=1).sum(axis=1)

    def clean_target(self, x: np.ndarray, g: np.ndarray | None = None) -> np.ndarray:
        """(G(x) - m_G) / sd_G: the noise-free target, variance 1 on the input distribution (`g`: the
        skills g(x), where the caller has them)."""
        return (self._composed(x, g) - self.mean_G) / self.sd_G

    @property
    def target_var(self) -> float:
        return 1.0 + self.spec.noise**2

    # -- the compositional split ---------------------------------------------------------------------
    @cached_property
    def heldout(self) -> tuple[tuple[int, ...], ...]:
        """H_s: the held-out combinations (sorted tuples of skill indices); for a mixed task the union
        of H_s over its levels (sorted by size, then as tuples)."""
        if self.spec.complexity_mix:
            return tuple(c for s in sorted(self.spec.complexity_mix) for c in self.heldout_at(s))
        return self.heldout_at(self.spec.complexity)

    def heldout_at(self, s: int) -> tuple[tuple[int, ...], ...]:
        """H_s of level s (what `heldout` is for an unmixed task)."""
        S = self.spec.n_skills
        n_combos = math.comb(S, s)
        n_hold = round(self.spec.holdout_frac * n_combos)
        if s in (1, S) or n_hold < 1 or n_hold >= n_combos:
            return ()
        combos = list(itertools.combinations(range(S), s))
        rng = _rng(self.spec.seed, 1, S, s)
        for _ in range(_COVER_TRIES):
            pick = rng.permutation(n_combos)
            held, kept = pick[:n_hold], pick[n_hold:]
            if len({j for i in kept for j in combos[i]}) == S:
                return tuple(sorted(combos[i] for i in held))
        return ()

    @cached_property
    def _heldout_codes(self) -> np.ndarray:
        return np.array([combo_code(c) for c in self.heldout], dtype=np.int64)

    def is_heldout(self, x: np.ndarray) -> np.ndarray:
        return np.isin(self.codes(x), self._heldout_codes)

    # -- data ----------------------------------------------------------------------------------------
    def sample(self, split: str, n: int, levels: bool = False, skills: bool = False
               ) -> tuple[np.ndarray, ...]:
        """The first n accepted points of a split's stream: x [n, input_width] and y [n] (float64); with
        `levels`, also each point's s [n] (int64; the task's s for an unmixed task); with `skills`, last,
        the skills g(x) [n, S] the targets were made from (what `skills(x)` gives)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
        sp = self.spec
        rng = _rng(*self._stream_key(split))
        want_heldout = split == "test_ood" and len(self.heldout) > 0
        xs, ys, ss, gs, have, chunks = [], [], [], [], 0, 0
        while have < n:
            if chunks == _MAX_CHUNKS:
                raise RuntimeError(f"split {split!r}: fewer than {n} accepted points in "
                                   f"{_MAX_CHUNKS * _CHUNK} draws (held-out combinations too rare)")
            x = rng.standard_normal((_CHUNK, self.input_width))
            eps = rng.standard_normal(_CHUNK)
            if sp.complexity_mix:
                lv = self.draw_levels(x, rng)
                keep = self.is_heldout_at(x, lv) == want_heldout
            else:
                lv = np.full(_CHUNK, sp.complexity)
                keep = self.is_heldout(x) == want_heldout
            x, lv = x[keep], lv[keep]
            g = self.skills(x)
            clean = self.clean_target_at(x, lv, g) if sp.complexity_mix else self.clean_target(x, g)
            ys.append(clean + sp.noise * eps[keep])
            xs.append(x)
            ss.append(lv)
            gs.append(g)
            have += len(x)
            chunks += 1
        out = (np.concatenate(xs)[:n], np.concatenate(ys)[:n])
        out += (np.concatenate(ss)[:n].astype(np.int64),) if levels else ()
        return out + ((np.concatenate(gs)[:n],) if skills else ())

    # -- mixed complexity: per-point levels (module docstring, 7.) ----------------------------------
    def draw_levels(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Each point's s [N]: uniform over the levels, from the split's stream (independent of x, so
        nothing the student reads tells it an input's s)."""
        mix = np.asarray(self.spec.complexity_mix)
        return mix[rng.integers(len(mix), size=len(x))]

    def active_mask(self, x: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Bool [N, S]: the s_i largest teacher scores of each point (ties: lower index)."""
        z = self.scores(x)
        rank = np.argsort(np.argsort(-z, axis=1, kind="stable"), axis=1, kind="stable")
        return rank < np.asarray(s).reshape(-1, 1)

    def codes_at(self, x: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Bitmask of each point's A(x) at its own level s_i."""
        return (self.active_mask(x, s) * (1 << np.arange(self.spec.n_skills))).sum(axis=1)

    def is_heldout_at(self, x: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Whether each point's A(x) at its own level is held out (codes of different sizes differ,
        so the union of the H_s is the per-level rule)."""
        return np.isin(self.codes_at(x, s), self._heldout_codes)

    def _level_moments(self, x_ref: np.ndarray, g: np.ndarray) -> dict[int, tuple[float, float]]:
        """{s: (m_G(s), sd_G(s))} of each level's composed skills on the reference sample."""
        out = {}
        for s in self.spec.complexity_mix:
            composed = (g * self.active_mask(x_ref, np.full(len(x_ref), s))).sum(axis=1)
            out[s] = (float(composed.mean()), float(composed.std()))
        return out

    def _moments_at(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(m_G(s_i), sd_G(s_i)) per point."""
        table = np.full((self.spec.n_skills + 1, 2), np.nan)
        for level, moments in self.level_moments.items():
            table[level] = moments
        s = np.asarray(s)
        return table[s, 0], table[s, 1]

    def clean_target_at(self, x: np.ndarray, s: np.ndarray, g: np.ndarray | None = None) -> np.ndarray:
        """The noise-free target of a mixed task at each point's own level s_i (`g`: as clean_target's)."""
        composed = ((self.skills(x) if g is None else g) * self.active_mask(x, s)).sum(axis=1)
        mean, sd = self._moments_at(s)
        return (composed - mean) / sd
