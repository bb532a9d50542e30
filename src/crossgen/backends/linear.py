"""The theory's linear-Gaussian model as a backend of the workflow loop.

An example is a feature vector (prompt) and a response (answer). Training is the weighted
minimum-norm least-squares fit of section 5 (the model is refit from the data, so
'continue' and 'restart' coincide); generating draws y = x.theta + N(0, sigma2); the score
of a test set is its mean squared prediction error (the analogue of cross-entropy: the
Gaussian negative log-likelihood up to constants).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
from safetensors.numpy import load_file, save_file

from crossgen.backends.base import TrainStats
from crossgen.data import Example
from crossgen.errors import InputError
from crossgen.io import atomic_path

# Relative cut-off for the pseudo-inverse (as numpy.linalg.pinv's rcond).
RCOND = 1e-10


class LinearModel:
    def __init__(self, theta: np.ndarray, sigma2: float):
        self.theta = np.asarray(theta, dtype=float)
        self.sigma2 = float(sigma2)

    def train(self, examples: Sequence[Example], cfg: Any = None, seed: int = 0,
              weights: Optional[Sequence[float]] = None,
              progress: Optional[Callable[[int, int], None]] = None) -> TrainStats:
        start = time.perf_counter()
        X, y = _design(examples)
        w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
        keep = w > 0  # zero-weight rows do not exist for the weighted loss
        sw = np.sqrt(w[keep])
        self.theta = np.linalg.pinv(X[keep] * sw[:, None], rcond=RCOND) @ (y[keep] * sw)
        if progress:
            progress(1, 1)
        residual = float(np.average((y - X @ self.theta) ** 2, weights=w)) if w.sum() > 0 else 0.0
        return TrainStats(steps=1, tokens=len(y), seconds=time.perf_counter() - start, final_loss=residual)

    def generate(self, prompts: Sequence[Any], cfg: Any = None, seed: int = 0,
                 max_new_tokens: Optional[int] = None) -> list[float]:
        X = np.asarray([np.asarray(p, dtype=float) for p in prompts]).reshape(len(prompts), -1)
        noise = np.random.default_rng(seed).standard_normal(len(prompts)) * np.sqrt(self.sigma2)
        return (X @ self.theta + noise).tolist()

    def score(self, examples: Sequence[Example], batch_size: int = 0) -> float:
        X, y = _design(examples)
        return float(np.mean((y - X @ self.theta) ** 2))

    def save(self, directory: Path) -> None:
        with atomic_path(Path(directory)) as tmp:
            tmp.mkdir(parents=True)
            save_file({"theta": self.theta, "sigma2": np.array([self.sigma2])}, str(tmp / "model.safetensors"))


class LinearBackend:
    def __init__(self, d: int, sigma2: float):
        self.d = d
        self.sigma2 = sigma2

    def initial_model(self, real_texts: Sequence[str] = (), seed: int = 0) -> LinearModel:
        return LinearModel(np.zeros(self.d), self.sigma2)

    def load(self, directory: Path) -> LinearModel:
        path = Path(directory) / "model.safetensors"
        if not path.is_file():
            raise InputError("model directory", str(directory), "a folder with model.safetensors")
        tensors = load_file(str(path))
        return LinearModel(tensors["theta"], float(tensors["sigma2"][0]))


def _design(examples: Sequence[Example]) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray([np.asarray(e.prompt, dtype=float) for e in examples])
    y = np.asarray([float(e.answer) for e in examples])
    return X.reshape(len(examples), -1), y
