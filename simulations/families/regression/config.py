"""The regression grid's configuration: nested, typed sections, loaded from YAML or TOML and validated.

`GridConfig` holds these sections: the task (docs/tasks.md), the grid's axes (lists: `complexity`,
`n_experts`, `k`, `n_train`, `width`, `seeds` and the arms' `router` x `experts`), the training settings,
the router kinds' and the estimators' own settings (each declared in its kind's module), the curriculum,
the student's settings and the runtime settings (where and how fast to run). What each setting means for
hashing, grouping and validation is its field's metadata (simulations.config_schema). Files and `--set`
may name settings flat (`lr: 0.01`, the form of every preset and saved manifest), nested (`training:
{lr: 0.01}`) or dotted (`training.lr=0.01`). `k: all` means 1..n_experts for each n_experts. Every
problem raises `ConfigError`, whose one-line message names the field and what is allowed; the CLI prints
it and exits non-zero before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass, make_dataclass
from typing import Any, ClassVar

from simulations import arms, estimators, families
from simulations.config import IMPL_CHOICES, RuntimeConfig, preset
from simulations.config_schema import (
    Choice,
    ChoiceList,
    ConfigError,
    IntAtLeast,
    IntList,
    IntListOrAll,
    Number,
    OptionalIntList,
    build,
    checked,
    flat,
    hashed,
    section,
    setting,
    stable_hash,
)
from simulations.families.regression.task_registry import DEFAULT_TASK, TASKS
from simulations.gates import GATES

__all__ = ["AxesConfig", "CurriculumConfig", "EstimatorsConfig", "GridConfig", "RoutersConfig",
           "StudentConfig", "TaskConfig", "TrainingConfig", "validate"]

# The arm of every store written before the routing controls: router and experts enter a hash only
# when they leave it.
_PRIMARY = arms.primary()


# The arms of the default grid are the quick preset's (the arm names live in simulations.arms and the
# presets, never in code); every other default below equals its quick preset value.
_QUICK = preset("quick")


@dataclass(frozen=True)
class TaskConfig:
    """The task's settings (docs/tasks.md); `complexity` is an axis."""

    n_skills: int = setting(8, IntAtLeast())
    d_in: int = setting(8, IntAtLeast())
    teacher_width: int = setting(32, IntAtLeast())
    noise: float = setting(0.1, Number())
    holdout_frac: float = setting(0.25, Number(below=1))
    # Which teacher, a name of the task registry (simulations.families.regression.task_registry): the
    # compositional task, or the contextual one whose router reads a context c of width d_context
    # (docs/tasks.md, "The contextual task"; d_context is unused by the compositional task)
    task: str = setting(DEFAULT_TASK, Choice(tuple(TASKS)), since=DEFAULT_TASK)
    d_context: int = setting(8, IntAtLeast(), since=8)
    # Mixed complexity (docs/tasks.md, "Adaptive k"): each input's s drawn uniformly from this list;
    # empty: every input has the model's s (the complexity axis).
    complexity_mix: list[int] = setting([], OptionalIntList(), since=[])


@dataclass(frozen=True)
class AxesConfig:
    """The grid's axes: a cell per combination (k per n_experts, arms that exist), a model per seed.
    Models share a bundle only with equal n_experts, width and arm (docs/tasks.md, "Controls": teacher
    experts pair with the learned router only; some kinds need n_experts a multiple of n_skills)."""

    complexity: list[int] = setting([1, 2, 4, 6], IntList())
    n_experts: list[int] = setting([16], IntList(), group=True)
    k: list[int] | str = setting([1, 2, 3, 4, 6, 8, 12, 16], IntListOrAll())
    n_train: list[int] = setting([150, 500], IntList())
    width: list[int] = setting([4], IntList(), group=True)
    seeds: list[int] = setting([0, 1, 2], IntList(lo=0))
    router: list[str] = setting(_QUICK["router"], ChoiceList(tuple(arms.ROUTERS)),
                                since=_PRIMARY.router.name, group=True)
    experts: list[str] = setting(_QUICK["experts"], ChoiceList(tuple(arms.EXPERTS)),
                                 since=_PRIMARY.experts.name, group=True)
    # The student's gate family (TopKMoE `gate`, docs/tasks.md "Gate families"); only router kinds that
    # use the model's gates (RouterKind.uses_gate) vary by it, the others' cells come once at "softmax".
    gate: list[str] = setting(["softmax"], ChoiceList(GATES), since="softmax", group=True)
    # How a learned router learns its top-k selection (simulations.estimators, docs/tasks.md "Estimators");
    # only router kinds that take estimators vary by it, the others' cells come once at "pathwise".
    estimator: list[str] = setting([estimators.DEFAULT_ESTIMATOR],
                                   ChoiceList(tuple(estimators.ESTIMATORS)),
                                   since=estimators.DEFAULT_ESTIMATOR, group=True)

    def arms(self) -> list[tuple[str, str]]:
        """The (router, experts) pairs of the grid: the product of the two axes, less the pairs that
        do not exist (simulations.arms.arm refuses them)."""
        return [(r, e) for r in self.router for e in self.experts if _pairs(r, e)]

    def gates_for(self, router: str) -> list[str]:
        """The gate families of a router kind's cells: the axis for a kind that uses the model's gates,
        else the default alone (its gates do not depend on the family)."""
        return list(self.gate) if arms.router(router).uses_gate else ["softmax"]

    def estimators_for(self, router: str) -> list[str]:
        """The estimators of a router kind's cells: the axis for a kind that takes estimators, else
        pathwise alone."""
        takes = arms.router(router).takes_estimator
        return list(self.estimator) if takes else [estimators.DEFAULT_ESTIMATOR]

    def ks_for(self, n_experts: int) -> list[int]:
        """The k values of the grid for one expert count."""
        return IntListOrAll.values(self.k, n_experts)


def _pairs(router: str, experts: str) -> bool:
    try:
        arms.arm(router, experts)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class TrainingConfig:
    """How every model trains and is evaluated (the regression trainer's TrainSettings is this plus the
    arm); a router kind's own settings are in the `routers` section."""

    lr: float = setting(0.005, Number(positive=True))
    max_steps: int = setting(1000, IntAtLeast())
    eval_every: int = setting(25, IntAtLeast())
    patience: int = setting(8, IntAtLeast())
    clip_norm: float = setting(1.0, Number(positive=True))
    n_val: int = setting(300, IntAtLeast())
    n_test: int = setting(2000, IntAtLeast())


# Every router kind's own settings (each declared in its module, simulations.arms: the learned router's
# router_lr_mult, balance_loss, router_noise; the top_p router's top_p, top_p_entropy), one section.
RoutersConfig = make_dataclass("RoutersConfig", arms.settings_fields(), frozen=True)
RoutersConfig.__doc__ = "The router kinds' own settings (each declared in its module)."

# Every estimator's own settings (each declared in its module, simulations.estimators), one section.
EstimatorsConfig = make_dataclass("EstimatorsConfig", estimators.settings_fields(), frozen=True)
EstimatorsConfig.__doc__ = "The estimators' own settings (each declared in its module)."


@dataclass(frozen=True)
class CurriculumConfig:
    """Data design of training (docs/tasks.md, "A single-skill phase"): `single_skill_steps` > 0 trains
    first that many steps at k = 1 on the same task at s = 1 (the s = 1 cell's training set of the same
    seed and size), then as usual; `single_skill_share` > 0 replaces that share of each training set
    by s = 1 points of the same task (the training set's size is unchanged)."""

    single_skill_steps: int = setting(0, IntAtLeast(0), since=0)
    single_skill_share: float = setting(0.0, Number(below=1), since=0.0)


@dataclass(frozen=True)
class StudentConfig:
    """How the student MoE is built (the regression trainer's init_model). A learned router's
    probabilities are softmax(logits / router_temperature); its initial weights are scaled by
    router_init_scale (0: uniform at the start)."""

    router_temperature: float = setting(1.0, Number(positive=True), since=1.0)
    router_init_scale: float = setting(1.0, Number(), since=1.0)
    # "teacher": a learned router starts at the teacher's selection (docs/tasks.md, "Estimators"): a
    # diagnostic of whether training keeps a composition it is given, never a learned result.
    router_init: str = setting("random", Choice(("random", "teacher")), since="random")
    renormalize: str = setting("k>1", Choice(("k>1", "always", "never")))
    # What a `width` value is: each expert's width h ("expert"), or the active width k h held fixed
    # across k ("active": a cell's experts get width / k; docs/tasks.md "Fixed active compute").
    width_rule: str = setting("expert", Choice(("expert", "active")), since="expert")
    impl: str = setting("auto", Choice(IMPL_CHOICES))
    dtype: str = setting("float32", Choice(("float32", "float64")))


@dataclass(frozen=True)
class GridConfig:
    """Everything a regression grid run needs. The defaults are the quick preset
    (presets/quick.yaml in this package), so a config file that sets a few fields changes only those."""

    family: ClassVar[str] = families.REGRESSION  # simulations.families: which experiment this config runs

    task: TaskConfig = section(TaskConfig)
    axes: AxesConfig = section(AxesConfig, axes=True)
    training: TrainingConfig = section(TrainingConfig)
    routers: RoutersConfig = section(RoutersConfig)
    estimators: EstimatorsConfig = section(EstimatorsConfig)
    curriculum: CurriculumConfig = section(CurriculumConfig)
    student: StudentConfig = section(StudentConfig)
    runtime: RuntimeConfig = section(RuntimeConfig, hashed=False)

    def to_dict(self) -> dict[str, Any]:
        """The flat view (what the manifest stores and what loads back)."""
        return flat(self)

    def config_hash(self) -> str:
        """Hash of every setting that can change a row's values (runtime settings excluded)."""
        return stable_hash(hashed(self))


def validate(raw: dict[str, Any]) -> GridConfig:
    """Build a GridConfig from a plain mapping (flat, nested or dotted names), checking names, types,
    ranges and the rules between settings."""
    vals = checked(GridConfig, raw)
    kinds = [f"the {r.name} router" for r in arms.ROUTERS.values()
             if r.needs_replicas and r.name in vals["router"]]
    kinds += [e.label for e in arms.EXPERTS.values() if e.needs_replicas and e.name in vals["experts"]]
    bad = [T for T in vals["n_experts"] if T % vals["n_skills"]] if kinds else []
    if bad:
        raise ConfigError(f"n_experts: {' and '.join(kinds)} need every n_experts to be a "
                          f"multiple of n_skills={vals['n_skills']} (r replicas per skill), got {bad[0]}")
    bad = [k for k in vals["k"] if k > min(vals["n_experts"])] if vals["k"] != "all" else []
    if bad:
        raise ConfigError(f"k: every k must be in 1..n_experts (1..{min(vals['n_experts'])}) "
                          f"or 'all', got {bad[0]}")
    bad = [s for s in vals["complexity"] if s > vals["n_skills"]]
    if bad:
        raise ConfigError(f"complexity: every value must be in 1..n_skills (1..{vals['n_skills']}), "
                          f"got {bad[0]}")
    _check_mix(vals)
    if vals["complexity_mix"] and (vals["single_skill_steps"] or vals["single_skill_share"]):
        raise ConfigError("single_skill_steps, single_skill_share: a single-skill phase or share needs a "
                          "task of one complexity; set complexity_mix to [] or both to 0")
    if vals["width_rule"] == "active":
        ks = {k for T in vals["n_experts"] for k in IntListOrAll.values(vals["k"], T)}
        bad = [(w, k) for w in vals["width"] for k in sorted(ks) if w % k]
        if bad:
            raise ConfigError(f"width: with width_rule active each width is the active width k h and must "
                              f"be a multiple of every k; {bad[0][0]} is not a multiple of {bad[0][1]}")
    return build(GridConfig, vals)


def _check_mix(vals: dict[str, Any]) -> None:
    """A mixed-complexity task: every level in 1..n_skills, and the complexity axis is exactly the
    largest level (the s the task's inputs reach at most)."""
    mix = vals["complexity_mix"]
    if not mix:
        return
    bad = [s for s in mix if s > vals["n_skills"]]
    if bad:
        raise ConfigError(f"complexity_mix: every level must be in 1..n_skills (1..{vals['n_skills']}), "
                          f"got {bad[0]}")
    if vals["complexity"] != [max(mix)]:
        raise ConfigError(f"complexity: with complexity_mix it must be [max(complexity_mix)] = "
                          f"[{max(mix)}], got {vals['complexity']}")
