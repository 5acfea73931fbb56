"""The exact noise prediction of a diagonal Gaussian mixture in numpy, written from the formula
of shared/MATH.md section 4 (and shared/reference/README.md), independently of the package:

    eps(x; a, s) = s * sum_k r_k(x) (x - a mu_k) / (a^2 v_k + s^2),
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

    def __call__(self, x, t, alpha, sigma):
        self.calls += 1
        return self.eps(x, alpha, sigma)
