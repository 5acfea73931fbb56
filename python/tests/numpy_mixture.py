"""The exact noise prediction of a diagonal Gaussian mixture in numpy, written from the formula
of shared/MATH.md section 4 (and shared/reference/README.md), independently of the package:

    eps(x; a, s) = s * sum_k r_k(x) (x - a mu_k) / (a^2 v_k + s^2),
    x0(x; a, s) = sum_k r_k(x) (mu_k + a v_k (x - a mu_k) / (a^2 v_k + s^2)),
    r_k = softmax_k(log w_k - 1/2 sum_j [(x_j - a mu_kj)^2 / (a^2 v_kj + s^2) + log(a^2 v_kj + s^2)]).
"""

import numpy as np


class NumpyMixtureEps:
    """A model callable model(x, t, alpha, sigma) -> eps, counting its calls."""

    def __init__(self, weights, means, variances):
        self.log_w = np.log(np.asarray(weights, dtype=np.float64))
        self.means = np.asarray(means, dtype=np.float64)
        self.var = np.asarray(variances, dtype=np.float64)
        self.calls = 0

    def eps(self, x, a, s):
        c = a * a * self.var + s * s  # (K, d)
        diff = x[:, None, :] - a * self.means[None, :, :]  # (N, K, d)
        logits = self.log_w[None, :] - 0.5 * np.sum(diff**2 / c[None] + np.log(c)[None], axis=2)
        logits -= logits.max(axis=1, keepdims=True)
        r = np.exp(logits)
        r /= r.sum(axis=1, keepdims=True)
        return s * np.einsum("nk,nkd->nd", r, diff / c[None])

    def x0(self, x, a, s):
        c = a * a * self.var + s * s
        diff = x[:, None, :] - a * self.means[None, :, :]
        logits = self.log_w[None, :] - 0.5 * np.sum(diff**2 / c[None] + np.log(c)[None], axis=2)
        logits -= logits.max(axis=1, keepdims=True)
        r = np.exp(logits)
        r /= r.sum(axis=1, keepdims=True)
        return np.einsum("nk,nkd->nd", r, self.means[None] + a * self.var[None] * diff / c[None])

    def __call__(self, x, t, alpha, sigma):
        self.calls += 1
        return self.eps(x, alpha, sigma)


class NumpyMixtureVelocity(NumpyMixtureEps):
    """The flow-matching velocity v = eps - x0 = E[z - x0 | x_t = x], from x0 where sigma >= alpha
    (v = (x - x0) / sigma - ... for x = alpha x0 + sigma eps) and from eps elsewhere, so that it is
    finite at both ends (alpha = 0 at t = 1, sigma = 0 at t = 0)."""

    def __call__(self, x, t, alpha, sigma):
        self.calls += 1
        if sigma >= alpha:
            x0 = self.x0(x, alpha, sigma)
            return (x - alpha * x0) / sigma - x0
        eps = self.eps(x, alpha, sigma)
        return eps - (x - sigma * eps) / alpha
