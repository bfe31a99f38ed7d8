"""The learned router's logit jitter (`router_noise`): each model's draws come from its own generator
seeded by its seeds, so they are the same whatever bundle the model is in (alone, or beside a model
with more training points that pads it), zero on padding, and a training run with jitter is
reproducible whatever torch's global generator holds."""

from __future__ import annotations

import torch

from simulations.families.regression import train as tr
from simulations.families.regression.tasks import CompositionalTask, TaskSpec

NOISE = {"router_noise": 0.5}


def _student(task_seeds: list[int], n_train: list[int], init_seeds: list[int], options=NOISE) -> tr.Student:
    tasks = [CompositionalTask(TaskSpec(4, 2, 4, teacher_width=8, seed=s, n_ref=2000)) for s in task_seeds]
    data = tr.make_bundle_data(tasks, n_train, 16, 40, torch.float64, "cpu")
    model = tr.init_model(8, 4, 4, [2] * len(tasks), init_seeds, "dense", "k>1", torch.float64, "cpu")
    return tr.Student(model, data, tr.TrainSettings(lr=0.01, max_steps=12, eval_every=4), options, init_seeds)


def test_a_models_jitter_does_not_depend_on_its_bundle_and_spares_padding():
    alone = _student([1], [48], [5])
    pair = _student([0, 1], [64, 48], [7, 5])  # the model is second, its training set padded to 64
    plain = pair.router.probs("train")
    for _ in range(3):  # successive training steps
        a = alone.router.probs("train", training=True)[0]
        b = pair.router.probs("train", training=True)[1]
        assert torch.equal(a, b[:, :48]) and not torch.equal(a, plain[1, :, :48])
        assert torch.equal(b[:, 48:], plain[1, :, 48:])  # padding: no jitter
    assert torch.equal(alone.router.probs("train"), plain[1:, :, :48])  # evaluation: no jitter


def test_training_with_jitter_is_reproducible_whatever_the_global_generator():
    rows = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        student = _student([0, 1], [64, 48], [7, 5])
        rows.append(tr.train_bundle(student.model, student.data, student.settings, NOISE, [7, 5]))
    numbers = [r.select_dtypes("number").drop(columns="wall_s") for r in rows]
    assert numbers[0].equals(numbers[1])
    torch.manual_seed(1)
    still = _student([0, 1], [64, 48], [7, 5], options={})
    quiet = tr.train_bundle(still.model, still.data, still.settings, {}, [7, 5])
    assert not quiet["val_mse"].equals(rows[0]["val_mse"])  # the jitter does change the training
