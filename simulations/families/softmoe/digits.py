"""Procedural MNIST-like digits for the expert-drop experiment, generated on the fly (nothing downloaded).

Each image is a seven-segment digit drawn with anti-aliased strokes at a random size, slant, stroke width,
per-segment ink and a small offset from the centre, plus Gaussian pixel noise.
Deterministic given the numpy Generator.
Images are tokenised like P3's MNIST: the rows are cut into `n_tokens` horizontal bands, one token each.
"""

from __future__ import annotations

import numpy as np

# Segments a..g of each digit 0-9, in the order a (top), b (top right), c (bottom right), d (bottom),
# e (bottom left), f (top left), g (middle).
SEGMENTS = np.array(
    [
        [1, 1, 1, 1, 1, 1, 0],
        [0, 1, 1, 0, 0, 0, 0],
        [1, 1, 0, 1, 1, 0, 1],
        [1, 1, 1, 1, 0, 0, 1],
        [0, 1, 1, 0, 0, 1, 1],
        [1, 0, 1, 1, 0, 1, 1],
        [1, 0, 1, 1, 1, 1, 1],
        [1, 1, 1, 0, 0, 0, 0],
        [1, 1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 0, 1, 1],
    ],
    dtype=bool,
)
N_CLASSES = 10
_EDGE = 0.35  # anti-aliasing softness, in pixels


def _soft_between(z: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Soft indicator of lo <= z <= hi (a product of two logistic edges)."""
    return 1.0 / ((1.0 + np.exp(-(z - lo) / _EDGE)) * (1.0 + np.exp(-(hi - z) / _EDGE)))


def _render(labels: np.ndarray, size: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    n = len(labels)
    u = lambda lo, hi: rng.uniform(lo, hi, size=(n, 1, 1))  # noqa: E731
    width, height = u(0.35, 0.45) * size, u(0.60, 0.72) * size
    thick = u(0.10, 0.16) * size
    slant = u(-0.2, 0.2)
    # Centred like MNIST, with a small jitter of the glyph's centre.
    x0 = size / 2 - width / 2 + u(-0.06, 0.06) * size
    y0 = size / 2 - height / 2 + u(-0.06, 0.06) * size
    ink = rng.uniform(0.6, 1.0, size=(n, 7, 1, 1))

    v, c = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="ij")  # row, col centres
    y = v[None] - y0
    x = c[None] - x0 - slant * (y - height / 2)
    zero, mid = np.zeros_like(width), height / 2
    full_x = _soft_between(x, zero, width)
    left, right = _soft_between(x, zero, thick), _soft_between(x, width - thick, width)
    top_half, bottom_half = _soft_between(y, zero, mid), _soft_between(y, mid, height)
    strokes = np.stack(
        [
            full_x * _soft_between(y, zero, thick),  # a
            right * top_half,  # b
            right * bottom_half,  # c
            full_x * _soft_between(y, height - thick, height),  # d
            left * bottom_half,  # e
            left * top_half,  # f
            full_x * _soft_between(y, mid - thick / 2, mid + thick / 2),  # g
        ],
        axis=1,
    )  # [n, 7, size, size]
    on = SEGMENTS[labels][:, :, None, None]
    img = (strokes * ink * on).max(axis=1)
    return img + noise * rng.standard_normal(img.shape)


def make_digits(
    n: int, size: int, noise: float, rng: np.random.Generator, chunk: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """`n` images [n, size, size] (float32) with labels [n] (int64), balanced in expectation."""
    labels = rng.integers(0, N_CLASSES, size=n)
    images = np.concatenate(
        [_render(labels[i : i + chunk], size, noise, rng) for i in range(0, n, chunk)]
    ) if n else np.zeros((0, size, size))
    return images.astype(np.float32), labels.astype(np.int64)


def tokenize(images: np.ndarray, n_tokens: int) -> np.ndarray:
    """Cut images [N, size, size] into n_tokens horizontal bands: tokens [N, n_tokens, size*size/n_tokens]."""
    n, size, _ = images.shape
    if size % n_tokens:
        raise ValueError(f"n_tokens: must divide the image size {size}, got {n_tokens}")
    return images.reshape(n, n_tokens, size * size // n_tokens)
