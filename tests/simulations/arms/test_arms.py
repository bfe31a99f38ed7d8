"""The arms registry: its kinds are consistent and resolvable, bad names are one-line errors, each arm
trains exactly what its kinds say, router kinds declare their own settings, and a new router kind is one
class registered in one place (here a toy kind with its own setting, defined in this test, trains a
bundle through train_bundle without any other change)."""

from __future__ import annotations

import dataclasses
import pkgutil
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import torch

from simulations import arms, routing
from simulations.config_schema import IntAtLeast, Number, setting
from simulations.families.regression import train as tr
from simulations.families.regression.config import RoutersConfig
from simulations.families.regression.tasks import CompositionalTask, TaskSpec

S, T = 4, 8


def bundle(teacher_experts: bool = False, ks=(1, 2, 4), gate: str = "softmax"):
    tasks = [CompositionalTask(TaskSpec(S, s, 4, teacher_width=8, seed=s, n_ref=4000)) for s in (1, 2, 2)]
    data = tr.make_bundle_data(tasks, [48, 64, 64], 24, 48, torch.float64, "cpu",
                               n_experts=T if teacher_experts else None)
    model = tr.init_model(T, 4, 4, list(ks), [0, 1, 2], "dense", "k>1", torch.float64, "cpu", gate=gate)
    return model, data


def test_kinds_are_registered_under_their_own_unique_names():
    for registry, base in ((arms.ROUTERS, arms.RouterKind), (arms.EXPERTS, arms.ExpertsKind)):
        assert registry
        assert all(name == kind.name and issubclass(kind, base) for name, kind in registry.items())
        assert all(isinstance(kind.label, str) and kind.label for kind in registry.values())
    with pytest.raises(ValueError, match="registered twice"):
        arms.register_router(arms.ROUTERS["learned"])
    with pytest.raises(ValueError, match="registered twice"):
        arms.register_experts(arms.EXPERTS["learned"])


def test_every_arm_resolves_and_has_a_unique_name_label_and_order():
    every = arms.arms()
    assert len({a.name for a in every}) == len({a.label for a in every}) == len({a.order for a in every})
    assert len(every) == len({a.name for a in every})
    assert [a.order for a in every] == sorted(a.order for a in every)
    for a in every:
        assert arms.arm_named(a.name) == a == arms.arm(a.router.name, a.experts.name, a.gate, a.estimator)
        # the trainer accepts every arm
        tr.TrainSettings(router=a.router.name, experts=a.experts.name, estimator=a.estimator)
    assert arms.primary().router.primary and arms.reference().router.reference
    assert arms.primary() != arms.reference()


def test_every_kind_implements_what_the_trainer_asks():
    """Routing kinds gate and gate at every k; expert kinds combine and give their outputs; what they
    train are the model's parameters (a gate head's where the gate family has one)."""
    params = {n for n, _ in bundle(gate="head")[0].named_parameters()}
    for kind in arms.ROUTERS.values():
        assert kind.route is not arms.RouterKind.route, kind.name
        if kind.routes:
            assert kind.gates_by_k is not arms.RouterKind.gates_by_k, kind.name
        assert set(kind.trains) <= params
    for kind in arms.EXPERTS.values():
        assert kind.combine is not arms.ExpertsKind.combine and kind.outputs is not arms.ExpertsKind.outputs
        assert set(kind.trains) <= params


def test_no_module_of_the_package_hides_a_public_name():
    """Importing a submodule sets it as an attribute of the package: a module called `experts` would
    replace the `experts()` lookup."""
    modules = {m.name for m in pkgutil.iter_modules(arms.__path__)}
    assert modules.isdisjoint(arms.__all__)
    assert callable(arms.experts) and callable(arms.router)


@pytest.mark.parametrize("call, message", [
    (lambda: arms.router("magic"),
     "router: expected one of dense, learned, oracle, oracle_select, supervised, top_p; got 'magic'"),
    (lambda: arms.experts("frozen"), "experts: expected one of learned, teacher; got 'frozen'"),
    (lambda: arms.arm_named("nope"), "arm: expected one of learned, learned-score"),
    (lambda: arms.arm("oracle", "teacher"),
     "experts: 'teacher' pairs with the learned or oracle_select router only"),
    (lambda: tr.TrainSettings(router="magic"), "router: expected one of"),
    (lambda: tr.TrainSettings(router="dense", experts="teacher"),
     "pairs with the learned or oracle_select router only"),
])
def test_unknown_names_and_pairs_are_one_line_errors_naming_the_allowed_values(call, message):
    with pytest.raises(ValueError, match=message) as err:
        call()
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("a", [a for a in arms.arms() if a.gate in ("softmax", "head")], ids=lambda a: a.name)
def test_each_arm_trains_exactly_its_kinds_parameters(a):
    """Of the parameters the model has: the gate head (router.gate_weight) exists under gate "head"
    only, and a learned router trains it with its own weight."""
    model, data = bundle(teacher_experts=a.experts.needs_expert_out, gate=a.gate)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert ("router.gate_weight" in before) == (a.gate == "head")
    settings = tr.TrainSettings(max_steps=5, eval_every=5, patience=100, router=a.router.name,
                                experts=a.experts.name, estimator=a.estimator)
    options = {"router_lr_mult": 2.0}  # a learned router's own setting
    student = tr.Student(model, data, settings, options)
    trains = {*a.router.trains, *a.experts.trains} & set(before)
    assert [n for n, _ in student.trainable()] == sorted(trains)
    lrs = {id(p): g.get("lr", settings.lr) for g in student.param_groups(settings.lr) for p in g["params"]}
    mult = {n: 2.0 if n in a.router.trains else 1.0 for n in trains}
    assert lrs == {id(p): settings.lr * mult[n] for n, p in student.trainable()}
    rows = tr.train_bundle(model, data, settings, options)
    assert np.isfinite(rows.test_mse_id).all()
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]) != (n in trains), n


@dataclass(frozen=True)
class RandomSettings:
    toy_draw_seed: int = setting(0, IntAtLeast(0), since=0)  # the seed of its draws


class RandomRouter(arms.RouterKind):
    """A toy router kind: k experts drawn at random for each point (fixed per point, from its own
    setting `toy_draw_seed`), each with gate 1 / k; it ignores the inputs and trains nothing."""

    name = "toy_random"
    label = "random router (test)"
    order = 99
    Settings = RandomSettings

    def __init__(self, model, data, settings, seeds):
        super().__init__(model, data, settings, seeds)
        gen = torch.Generator().manual_seed(settings.toy_draw_seed)
        self.scores = {split: torch.rand(model.n_models, model.n_experts, data.split(split)[0].shape[1],
                                         generator=gen, dtype=torch.float64) for split in data.z}

    def _at(self, split, points, k: torch.Tensor) -> arms.Gating:
        rank = routing.skill_ranks(self.scores[split][:, :, points].transpose(1, 2)).transpose(1, 2)
        selected = rank < k.view(-1, 1, 1)
        return arms.Gating(selected, selected / k.view(-1, 1, 1).to(torch.float64))

    def route(self, split, points=slice(None), training=False) -> arms.Gating:
        return self._at(split, points, self.model.router.k_per_model)

    def gates_by_k(self, split, points) -> Iterator[torch.Tensor]:
        for j in range(self.model.n_experts):
            yield self._at(split, points, torch.full_like(self.model.router.k_per_model, j + 1)).gates


@pytest.fixture
def toy_router():
    arms.register_router(RandomRouter)
    try:
        yield RandomRouter
    finally:
        del arms.ROUTERS[RandomRouter.name]


def test_a_new_router_kind_is_one_registered_class(toy_router):
    """The toy kind joins the arms and trains a bundle through train_bundle: its experts learn, its
    router parameters stay as initialised, and its rows carry routing measures and k_eval curves
    consistent with its test error. Its own setting joins the router kinds' settings, and each
    instance gets it from the flat options (the cell), its default where absent."""
    a = arms.arm_named("toy_random")
    assert a.router is toy_router and a in arms.arms() and a.label == "random router (test)"
    assert [f[0] for f in arms.settings_fields()][-1] == "toy_draw_seed"
    model, data = bundle()
    settings = tr.TrainSettings(max_steps=30, eval_every=10, patience=100, router="toy_random")
    assert tr.Student(model, data, settings).router.settings == RandomSettings(0)
    student = tr.Student(model, data, settings, {"toy_draw_seed": 3, "lr": 0.5})
    assert student.router.settings == RandomSettings(3)
    assert not torch.equal(student.route("id")[0], tr.Student(model, data, settings).route("id")[0])
    router_before, w1_before = model.router.weight.detach().clone(), model.w1.detach().clone()
    rows = tr.train_bundle(model, data, settings, options={"toy_draw_seed": 3})
    assert torch.equal(model.router.weight, router_before) and not torch.equal(model.w1, w1_before)
    assert np.isfinite(rows.test_mse_id).all() and not rows.diverged.any()
    assert rows.routing_recall.between(0, 1).all() and rows.routing_gate_mass.between(0, 1).all()
    at_k = np.array([curve[k - 1] for curve, k in zip(rows.k_eval_mse_id, (1, 2, 4), strict=True)])
    np.testing.assert_allclose(at_k, rows.test_mse_id, rtol=1e-9)


def test_the_toy_kind_is_gone_after_its_test():
    assert "toy_random" not in arms.ROUTERS
    assert "toy_draw_seed" not in [f[0] for f in arms.settings_fields()]
    with pytest.raises(ValueError, match="router: expected one of"):
        tr.TrainSettings(router="toy_random")


def test_router_kinds_declare_their_own_settings():
    """The learned router declares its training options, the top_p router extends them (each setting
    listed once, in registration order); the config's routers section is exactly these; two kinds that
    name a setting alike are refused."""
    names = [f[0] for f in arms.settings_fields()]
    assert names == ["router_lr_mult", "balance_loss", "router_noise", "top_p", "top_p_entropy"]
    assert [f.name for f in dataclasses.fields(RoutersConfig)] == names
    assert not any(n in names for n in (f.name for f in dataclasses.fields(tr.TrainSettings)))
    top_p = {f.name for f in dataclasses.fields(arms.router("top_p").Settings)}
    assert {f.name for f in dataclasses.fields(arms.router("learned").Settings)} < top_p
    assert arms.router("oracle").Settings is arms.RouterKind.Settings

    @dataclass(frozen=True)
    class Clash:
        top_p: float = setting(0.3, Number(), since=0.3)

    clash = type("Clash", (arms.RouterKind,), {"name": "toy_clash", "label": "clash", "order": 98,
                                                "Settings": Clash})
    arms.register_router(clash)
    try:
        with pytest.raises(TypeError, match="setting 'top_p' is declared twice"):
            arms.settings_fields()
    finally:
        del arms.ROUTERS["toy_clash"]


def test_teacher_experts_without_their_outputs_is_a_one_line_error():
    model, data = bundle()  # drawn without the teacher-expert outputs
    with pytest.raises(ValueError, match=r"teacher experts need the bundle's teacher-expert outputs"):
        tr.Student(model, data, tr.TrainSettings(experts="teacher"))


def test_arm_names_maps_rows_to_arms_and_refuses_unknown_pairs():
    every = arms.arms()
    rows = pd.DataFrame({"router": [a.router.name for a in every],
                         "experts": [a.experts.name for a in every], "gate": [a.gate for a in every],
                         "estimator": [a.estimator for a in every]})
    assert arms.arm_names(rows).tolist() == [a.name for a in every]
    assert arms.arm_names(rows.drop(columns="experts")).eq(arms.primary().name).all()
    bad = pd.DataFrame({"router": [arms.primary().router.name], "experts": ["nowhere"]})
    unknown = r"^router/experts/gate/estimator: unknown arm\(s\) .*/nowhere/softmax/pathwise:"
    with pytest.raises(ValueError, match=unknown):
        arms.arm_names(bad)
