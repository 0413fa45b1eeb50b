"""Small measuring probes for the synthetic worlds: logistic regression in numpy and generic image statistics.

They answer "is this information readable from that view?" (e.g. material from the shapes world's low- vs
high-resolution images) without any learned backbone, so a result says something about the data itself.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(200, 3)); y = (x[:, 0] > 0).astype(int)
>>> probe = LogisticProbe().fit(x[:100], y[:100])
>>> probe.accuracy(x[100:], y[100:]) > 0.9
True
"""

from __future__ import annotations

import numpy as np

__all__ = ["LogisticProbe", "RidgeProbe", "image_statistics"]


class LogisticProbe:
    """Multinomial logistic regression on standardised features, fitted by full-batch gradient descent with
    L2 weight decay (deterministic: zero init, fixed steps).

    Args:
        steps: gradient steps; lr: step size; weight_decay: L2 coefficient on the weights.
    """

    def __init__(self, steps: int = 500, lr: float = 0.5, weight_decay: float = 1e-3):
        if steps < 1 or lr <= 0 or weight_decay < 0:
            raise ValueError(f"Need steps >= 1, lr > 0, weight_decay >= 0; got {steps}, {lr}, {weight_decay}.")
        self.steps, self.lr, self.weight_decay = steps, lr, weight_decay

    def fit(self, x: np.ndarray, y: np.ndarray) -> LogisticProbe:
        """x: (samples, features) float; y: (samples,) int labels in [0, classes)."""
        x = np.asarray(x, np.float64)
        y = np.asarray(y, np.int64)
        if x.ndim != 2 or y.shape != (len(x),):
            raise ValueError(f"Need x (samples, features) and y (samples,); got {x.shape} and {y.shape}.")
        self.mean, self.std = x.mean(0), x.std(0) + 1e-8
        z = (x - self.mean) / self.std
        classes = int(y.max()) + 1 if len(y) else 1
        self.weights = np.zeros((z.shape[1], max(classes, 2)))
        self.bias = np.zeros(max(classes, 2))
        onehot = np.eye(max(classes, 2))[y]
        for _ in range(self.steps):
            logits = z @ self.weights + self.bias
            logits -= logits.max(1, keepdims=True)
            p = np.exp(logits)
            p /= p.sum(1, keepdims=True)
            grad = (p - onehot) / len(z)
            self.weights -= self.lr * (z.T @ grad + self.weight_decay * self.weights)
            self.bias -= self.lr * grad.sum(0)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(samples, features) -> (samples,) predicted labels."""
        z = (np.asarray(x, np.float64) - self.mean) / self.std
        return (z @ self.weights + self.bias).argmax(1)

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        return float((self.predict(x) == np.asarray(y)).mean())


class RidgeProbe:
    """Linear ridge-regression classifier on standardised features (one-hot targets), solved in closed form in
    the dual (samples x samples), so thousands of raw pixels cost one small solve. The penalty is
    `alpha * features`, so one `alpha` suits any feature count.

    >>> x = np.random.default_rng(0).normal(size=(200, 20)); y = (x[:, 0] > 0).astype(int)
    >>> RidgeProbe(alpha=0.01).fit(x[:100], y[:100]).accuracy(x[100:], y[100:]) > 0.9
    True
    """

    def __init__(self, alpha: float = 1.0):
        if not alpha > 0:
            raise ValueError(f"`alpha` must be > 0, got {alpha}.")
        self.alpha = alpha

    def fit(self, x: np.ndarray, y: np.ndarray) -> RidgeProbe:
        """x: (samples, features); y: (samples,) int labels."""
        x = np.asarray(x, np.float64)
        y = np.asarray(y, np.int64)
        self.mean, self.std = x.mean(0), x.std(0) + 1e-8
        self.train = (x - self.mean) / self.std
        targets = np.eye(max(int(y.max()) + 1, 2))[y]
        gram = self.train @ self.train.T
        self.dual = np.linalg.solve(gram + self.alpha * x.shape[1] * np.eye(len(x)), targets - targets.mean(0))
        self.offset = targets.mean(0)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, np.float64) - self.mean) / self.std
        return (z @ self.train.T @ self.dual + self.offset).argmax(1)

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        return float((self.predict(x) == np.asarray(y)).mean())


def image_statistics(images: np.ndarray) -> np.ndarray:
    """Generic per-image statistics, the same for any resolution: (N, H, W, 3) uint8 -> (N, 15) float64.

    Per channel mean and std; luminance max and std; mean absolute horizontal and vertical differences and
    their maxima; mean absolute Laplacian, its maximum and the mean of its top 2% of pixels.

    >>> image_statistics(np.zeros((2, 8, 8, 3), np.uint8)).shape
    (2, 15)
    """
    x = np.asarray(images, np.float32)
    lum = x.mean(-1)
    dh = np.abs(np.diff(lum, axis=2)).reshape(len(x), -1)
    dv = np.abs(np.diff(lum, axis=1)).reshape(len(x), -1)
    lap = np.abs(4 * lum[:, 1:-1, 1:-1] - lum[:, :-2, 1:-1] - lum[:, 2:, 1:-1] - lum[:, 1:-1, :-2] - lum[:, 1:-1, 2:])
    lap = lap.reshape(len(x), -1)
    flat = lum.reshape(len(x), -1)
    top = max(1, lap.shape[1] // 50)
    return np.column_stack([
        x.mean((1, 2)), x.std((1, 2)), flat.max(1), flat.std(1), dh.mean(1), dv.mean(1), dh.max(1), dv.max(1),
        lap.mean(1), lap.max(1), np.partition(lap, -top, axis=1)[:, -top:].mean(1),
    ]).astype(np.float64)  # fmt: skip
