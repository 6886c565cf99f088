"""ToyWorld's shapes: the 7 grid classes and the distractor classes the toy CLIP also learns, as closed outlines."""
from __future__ import annotations

import numpy as np

from ..paradigms import TOYWORLD_CLASSES as GRID_CLASSES

# Classes the model learns but the book's grid never uses: a real CLIP knows far more concepts than a grid.
DISTRACTOR_CLASSES = (
    "pentagon", "hexagon", "octagon", "diamond", "oval", "crescent", "semicircle", "trapezoid",
    "parallelogram", "kite", "chevron", "lightning", "house", "drop", "flower", "gear", "bowtie",
    "hourglass", "tee", "ell", "horseshoe", "sparkle", "hexagram", "cloud", "leaf", "shield",
)
CLASSES = GRID_CLASSES + DISTRACTOR_CLASSES


def _polar(r: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Radii and angles (y up) -> (P, 2) points (y down, as in images)."""
    return np.stack([r * np.cos(a), -r * np.sin(a)], 1)


def _regular(n: int, start: float = np.pi / 2) -> np.ndarray:
    """A regular n-gon -> (n, 2)."""
    return _polar(np.ones(n), start + np.arange(n) * 2 * np.pi / n)


def _star(points: int, inner: float) -> np.ndarray:
    """A star with `points` tips and inner radius `inner` -> (2 * points, 2)."""
    r = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return _polar(r, np.pi / 2 + np.arange(2 * points) * np.pi / points)


def _outline_table() -> dict[str, np.ndarray]:
    """Class name -> raw closed outline (P, 2), any scale."""
    t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    w = 0.32
    half = np.linspace(0, np.pi, 24)
    return {
        "circle": _polar(np.ones_like(t), t),
        "square": np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float),
        "triangle": _regular(3),
        "star": _star(5, 0.42),
        "heart": np.stack([16 * np.sin(t) ** 3, -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))], 1),
        "cross": np.array([[-w, -1], [w, -1], [w, -w], [1, -w], [1, w], [w, w], [w, 1], [-w, 1], [-w, w], [-1, w], [-1, -w], [-w, -w]]),
        "arrow": np.array([[-1, -0.2], [0.15, -0.2], [0.15, -0.6], [1, 0], [0.15, 0.6], [0.15, 0.2], [-1, 0.2]]),
        "pentagon": _regular(5),
        "hexagon": _regular(6, 0.0),
        "octagon": _regular(8, np.pi / 8),
        "diamond": np.array([[0, -1], [0.6, 0], [0, 1], [-0.6, 0]]),
        "oval": np.stack([np.cos(t), 0.55 * np.sin(t)], 1),
        "crescent": np.vstack([_polar(np.ones(24), np.linspace(np.pi / 2, 3 * np.pi / 2, 24)),
                               _polar(np.ones(24), np.linspace(3 * np.pi / 2, np.pi / 2, 24)) * [0.45, 1]]),
        "semicircle": np.vstack([_polar(np.ones(24), half), [[-1, 0], [1, 0]]]),
        "trapezoid": np.array([[-0.5, -0.6], [0.5, -0.6], [1, 0.6], [-1, 0.6]]),
        "parallelogram": np.array([[-0.4, -0.6], [1, -0.6], [0.4, 0.6], [-1, 0.6]]),
        "kite": np.array([[0, -1], [0.55, -0.35], [0, 1], [-0.55, -0.35]]),
        "chevron": np.array([[-1, -0.6], [0, 0.2], [1, -0.6], [1, 0.1], [0, 0.9], [-1, 0.1]]),
        "lightning": np.array([[0.1, -1], [0.6, -1], [0.15, -0.15], [0.55, -0.15], [-0.35, 1], [-0.05, 0.15], [-0.45, 0.15]]),
        "house": np.array([[-0.8, 1], [-0.8, -0.1], [0, -0.9], [0.8, -0.1], [0.8, 1]]),
        "drop": np.vstack([[[0, -1]], _polar(0.55 * np.ones(30), np.linspace(np.pi / 6 + np.pi, -np.pi / 6, 30)) + [0, 0.4]]),
        "flower": _polar(0.55 + 0.45 * np.abs(np.cos(2.5 * t)), t),
        "gear": _polar(np.where((np.arange(48) // 3) % 2 == 0, 1.0, 0.75), t),
        "bowtie": np.array([[-1, -0.7], [0, -0.15], [1, -0.7], [1, 0.7], [0, 0.15], [-1, 0.7]]),
        "hourglass": np.array([[-0.7, -1], [0.7, -1], [0.12, 0], [0.7, 1], [-0.7, 1], [-0.12, 0]]),
        "tee": np.array([[-1, -1], [1, -1], [1, -0.5], [0.25, -0.5], [0.25, 1], [-0.25, 1], [-0.25, -0.5], [-1, -0.5]]),
        "ell": np.array([[-0.7, -1], [-0.2, -1], [-0.2, 0.5], [0.7, 0.5], [0.7, 1], [-0.7, 1]]),
        "horseshoe": np.vstack([_polar(np.ones(20), np.linspace(-np.pi / 5, np.pi + np.pi / 5, 20)),
                                _polar(0.55 * np.ones(20), np.linspace(np.pi + np.pi / 5, -np.pi / 5, 20))]),
        "sparkle": _star(4, 0.3),
        "hexagram": _star(6, 0.58),
        "cloud": _polar(0.75 + 0.25 * np.abs(np.sin(3 * t)), t) * [1, 0.7],
        "leaf": np.vstack([_polar(np.ones(20), np.linspace(np.pi / 4, 3 * np.pi / 4, 20)) + [0, 0.7],
                           _polar(np.ones(20), np.linspace(5 * np.pi / 4, 7 * np.pi / 4, 20)) + [0, -0.7]]),
        "shield": np.vstack([[[-0.8, -0.9], [0.8, -0.9]], _polar(0.8 * np.ones(20), np.linspace(0, -np.pi, 20)) * [1, 1.4] + [0, -0.1]]),
    }


def _normalise(p: np.ndarray) -> np.ndarray:
    """(P, 2) -> centred on its bounding box, max radius 1."""
    p = np.asarray(p, float)
    p = p - (p.max(0) + p.min(0)) / 2
    return p / np.linalg.norm(p, axis=1).max()


OUTLINES = {c: _normalise(p) for c, p in _outline_table().items()}
assert set(OUTLINES) == set(CLASSES), set(OUTLINES) ^ set(CLASSES)
