"""Samplers written here in k-diffusion's convention, sampler(denoiser, x, sigmas) -> x, from
the papers' update rules (not from any library's source), for the certify tests."""

import numpy as np


def euler(denoiser, x, sigmas):
    """Euler on dx/dsigma = (x - D(x, sigma)) / sigma (Karras et al. 2022, Algorithm 1 without
    the second-order correction): order 1, one call per step."""
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        d = (x - denoiser(x, s)) / s
        x = x + d * (s_next - s)
    return x


def heun(denoiser, x, sigmas):
    """Heun's method (Karras et al. 2022, Algorithm 1): order 2, two calls per step."""
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        d = (x - denoiser(x, s)) / s
        x_pred = x + d * (s_next - s)
        d_next = (x_pred - denoiser(x_pred, s_next)) / s_next
        x = x + 0.5 * (d + d_next) * (s_next - s)
    return x


def broken_heun(denoiser, x, sigmas):
    """Heun with the two slopes weighted 0.7 / 0.3 instead of 1/2 / 1/2: consistent but first
    order, the kind of slip a certifier must catch."""
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        d = (x - denoiser(x, s)) / s
        x_pred = x + d * (s_next - s)
        d_next = (x_pred - denoiser(x_pred, s_next)) / s_next
        x = x + (0.7 * d + 0.3 * d_next) * (s_next - s)
    return x


def dpmpp_2m(denoiser, x, sigmas):
    """DPM-Solver++(2M) in lambda = -log sigma (Lu et al. 2022b, Algorithm 2, data prediction
    with alpha = 1): a first-order first step, then the multistep correction; order 2."""
    lam = -np.log(sigmas)
    previous = None
    for i in range(len(sigmas) - 1):
        d0 = denoiser(x, sigmas[i])
        h = lam[i + 1] - lam[i]
        if previous is None:
            d = d0
        else:
            r = (lam[i] - lam[i - 1]) / h
            d = (1 + 1 / (2 * r)) * d0 - (1 / (2 * r)) * previous
        x = (sigmas[i + 1] / sigmas[i]) * x - np.expm1(-h) * d
        previous = d0
    return x


def dpmpp_3m_d2_weight_half(denoiser, x, sigmas):
    """Multistep DPM-Solver++(3M) with the second-difference term weighted as diffusers'
    DPMSolverMultistepScheduler (from the original DPM-Solver code) weights it:
    x_t = (s_t / s_0) x + (1 - e^-h) D0 + ((e^-h - 1) / h + 1) D1 - ((e^-h - 1 + h) / h^2 - 1/2) D2.
    The Taylor-consistent weight of D2 is ((e^-h - 1 + h) / h^2 - 1/2) / ... differs, so the
    local error keeps an h^3 term: order 2 (README, "diffusers' third-order multistep solvers").
    Orders 1, 2, then 3 on the first three steps."""
    lam = -np.log(sigmas)
    ms = []
    for i in range(len(sigmas) - 1):
        ms.append(denoiser(x, sigmas[i]))
        h = lam[i + 1] - lam[i]
        ratio = sigmas[i + 1] / sigmas[i]
        if len(ms) == 1:
            x = ratio * x - np.expm1(-h) * ms[-1]
        elif len(ms) == 2:
            r0 = (lam[i] - lam[i - 1]) / h
            d1 = (ms[-1] - ms[-2]) / r0
            x = ratio * x - np.expm1(-h) * ms[-1] - 0.5 * np.expm1(-h) * d1
        else:
            h0, h1 = lam[i] - lam[i - 1], lam[i - 1] - lam[i - 2]
            r0, r1 = h0 / h, h1 / h
            d1_0 = (ms[-1] - ms[-2]) / r0
            d1_1 = (ms[-2] - ms[-3]) / r1
            d1 = d1_0 + r0 / (r0 + r1) * (d1_0 - d1_1)
            d2 = (d1_0 - d1_1) / (r0 + r1)
            em = np.expm1(-h)
            x = ratio * x - em * ms[-1] + (em / h + 1) * d1 - ((em + h) / h**2 - 0.5) * d2
    return x
