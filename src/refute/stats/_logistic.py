"""Logistic regression with an L2 penalty, binary or multinomial, fitted by L-BFGS.

The one logistic regression in refute: linear probes on activations (`refute.interp`) and the
refusal classifier (`refute.scorers`) both fit through `logistic_regression`.

The penalty convention is scikit-learn's ``LogisticRegression(C=1 / l2)``, which is also the
negative log posterior under a Gaussian prior of precision ``l2`` on each weight. The fit minimises

    sum_i -log p(y_i | x_i)  +  (l2 / 2) * sum_k sum_j w_kj^2

``l2`` is one number or one per feature (column j); intercepts are not penalised. The penalty is
*not* scaled by the number of examples, so the same ``l2`` regularises less as data grow. (The
objective is divided by n before the optimiser sees it, which changes its scale, not its minimum.)

Two classes get one weight vector, ``p(y = 1 | x) = sigmoid(x . w + b)``, ``coef`` of shape
``(1, D)``; K > 2 classes get the symmetric softmax with one vector per class, ``coef`` ``(K, D)``
(scikit-learn's multinomial fit). Inputs are used as given: standardise features first when they
should be penalised alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from refute.errors import ConfigError

__all__ = ["LogisticFit", "logistic_regression"]


@dataclass(frozen=True)
class LogisticFit:
    """A fitted logistic regression (see the module docstring for the model and penalty)."""

    coef: np.ndarray  # (1, D) for two classes, (K, D) for K > 2
    intercept: np.ndarray  # (1,) or (K,)
    n_classes: int
    l2: float | tuple[float, ...]
    n_iter: int
    converged: bool
    loss: float  # the objective at the fit, divided by the number of examples

    def decision_function(self, x: ArrayLike) -> np.ndarray:
        """Log-odds of class 1 ``(N,)`` for two classes; per-class logits ``(N, K)`` otherwise."""
        z = np.asarray(x, dtype=float) @ self.coef.T + self.intercept  # (N, 1) or (N, K)
        out: np.ndarray = z[:, 0] if self.n_classes == 2 else z
        return out

    def predict_proba(self, x: ArrayLike) -> np.ndarray:
        """Class probabilities ``(N, K)`` (two classes: columns p(0), p(1))."""
        from scipy.special import expit, softmax

        z = self.decision_function(x)
        if self.n_classes == 2:
            p1 = expit(z)
            return np.stack([1.0 - p1, p1], axis=1)
        out: np.ndarray = softmax(z, axis=1)
        return out


def _check(x: ArrayLike, y: ArrayLike, l2: float | ArrayLike, n_classes: int | None
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    xa = np.asarray(x, dtype=float)
    if xa.ndim != 2 or xa.shape[0] == 0:
        raise ConfigError(f"logistic_regression: x must be a non-empty (N, D) array, got shape {xa.shape}")
    if not np.isfinite(xa).all():
        raise ConfigError("logistic_regression: x has NaN or infinite values")
    ya = np.asarray(y)
    if ya.shape != (xa.shape[0],):
        raise ConfigError(f"logistic_regression: y must have one class per row of x ({xa.shape[0]}), "
                          f"got shape {ya.shape}")
    codes = ya.astype(np.int64)
    if not np.array_equal(codes, ya) or codes.min() < 0:
        raise ConfigError("logistic_regression: y must be class codes 0, 1, ..., K-1")
    k = int(codes.max()) + 1 if n_classes is None else int(n_classes)
    if k < 2 or codes.max() >= k:
        raise ConfigError(f"logistic_regression: need at least two classes and codes below n_classes, "
                          f"got n_classes={k} and codes up to {int(codes.max())}")
    penalty = np.asarray(l2, dtype=float)
    if penalty.ndim > 1 or (penalty.ndim == 1 and penalty.shape[0] != xa.shape[1]):
        raise ConfigError(f"logistic_regression: l2 must be one number or one per feature "
                          f"({xa.shape[1]}), got shape {penalty.shape}")
    if not np.isfinite(penalty).all() or (penalty < 0).any():
        raise ConfigError(f"logistic_regression: l2 must be finite and >= 0, got {l2!r}")
    return xa, codes, np.broadcast_to(penalty, (xa.shape[1],)), k


def logistic_regression(x: ArrayLike, y: ArrayLike, *, l2: float | ArrayLike = 1.0,
                        n_classes: int | None = None, max_iter: int = 1000,
                        tol: float = 1e-8) -> LogisticFit:
    """Fit ``y`` (class codes 0..K-1) on ``x`` ``(N, D)`` with L2 strength ``l2`` (``C = 1 / l2``).

    ``n_classes`` defaults to ``max(y) + 1``; pass it when a class may be absent from ``y``.
    Stops when the largest gradient entry of the per-example objective is below ``tol`` or after
    ``max_iter`` L-BFGS iterations (``converged`` says which).
    """
    from scipy.optimize import minimize
    from scipy.special import expit, log_softmax

    xa, codes, penalty, k = _check(x, y, l2, n_classes)
    n, d = xa.shape
    if k == 2:
        t = codes.astype(float)

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            w, b = theta[:d], theta[d]
            z = xa @ w + b  # (N,)
            value = float(np.sum(np.logaddexp(0.0, z) - t * z) + 0.5 * np.sum(penalty * w * w)) / n
            gz = expit(z) - t  # (N,)
            return value, np.concatenate([(xa.T @ gz + penalty * w) / n, [gz.sum() / n]])

        rows = 1
    else:
        onehot = np.eye(k)[codes]  # (N, K)

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            w, b = theta[: k * d].reshape(k, d), theta[k * d :]
            logp = log_softmax(xa @ w.T + b, axis=1)  # (N, K)
            value = float(-(onehot * logp).sum() + 0.5 * (penalty * w * w).sum()) / n
            gz = np.exp(logp) - onehot  # (N, K)
            return value, np.concatenate([((gz.T @ xa + penalty * w) / n).ravel(), gz.sum(axis=0) / n])

        rows = k
    res = minimize(objective, np.zeros(rows * (d + 1)), jac=True, method="L-BFGS-B",
                   options={"maxiter": max_iter, "gtol": tol, "ftol": 1e3 * np.finfo(float).eps})
    coef = res.x[: rows * d].reshape(rows, d)
    intercept = res.x[rows * d :]
    l2_arr = np.asarray(l2, dtype=float)
    l2_out: float | tuple[float, ...] = float(l2_arr) if l2_arr.ndim == 0 else tuple(map(float, l2_arr))
    return LogisticFit(coef, intercept, k, l2_out, int(res.nit), bool(res.success), float(res.fun))
