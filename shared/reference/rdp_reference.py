#!/usr/bin/env python3
"""Reference values for the Commons RDP accountant (shared/src/privacy/dp/rdp.ts).

An independent implementation, in Python with numpy and scipy only, of the Renyi-DP
analysis of the sampled Gaussian mechanism that TensorFlow Privacy's
``rdp_accountant.compute_rdp`` and Opacus's ``accountants/analysis/rdp.py`` use
(Mironov 2017; Mironov, Talwar, Zhang 2019, section 3.3), and of the RDP -> (eps, delta)
conversion of Balle et al. 2020 (Theorem 21) that both use today. It deliberately differs
from the TypeScript in how it gets its special functions -- scipy's log_ndtr for log erfc,
gammaln for the binomial coefficients, scipy.special.binom for the fractional ones -- so
that agreement means the maths agrees, not that one file was transcribed into the other.

Run with: /usr/bin/python3 shared/reference/rdp_reference.py
It writes rdp_reference.json beside itself.
"""

import json
import math
import os

import numpy as np
from scipy import special

# Opacus's DEFAULT_ALPHAS: fine steps near 1 (where small budgets are tight) then integers.
ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))

SAMPLE_RATES = [0.001, 0.01, 0.1, 0.5, 1.0]
NOISE_MULTIPLIERS = [0.5, 0.8, 1.1, 2.0, 5.0]
STEPS = [1, 100, 10000]
DELTAS = [1e-5, 1e-6]
LOG_ERFC_POINTS = [-30.0, -8.0, -3.0, -1.3, -1.0, -0.5, -1e-3, 0.0, 1e-8, 0.1, 0.5, 1.0,
                   1.2, 1.2247, 1.3, 2.0, 3.5, 5.0, 8.0, 10.0, 20.0, 26.0, 27.5, 30.0,
                   100.0, 1e3, 1e5]


def log_add(a, b):
    """log(exp(a) + exp(b)) without overflow."""
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    hi, lo = max(a, b), min(a, b)
    return hi + math.log1p(math.exp(lo - hi))


def log_sub(a, b):
    """log(exp(a) - exp(b)) for a >= b."""
    if b == -math.inf:
        return a
    if a < b:
        raise ValueError("log_sub: negative result")
    if a == b:
        return -math.inf
    return b + math.log(math.expm1(a - b))


def log_erfc(x):
    # erfc(x) = 2 * Phi(-x * sqrt(2)); log_ndtr is accurate far into both tails.
    return math.log(2.0) + float(special.log_ndtr(-x * math.sqrt(2.0)))


def log_a_int(q, sigma, alpha):
    """log A_alpha for integer alpha: the binomial expansion, summed in log space."""
    total = -math.inf
    for i in range(alpha + 1):
        log_binom = special.gammaln(alpha + 1) - special.gammaln(i + 1) - special.gammaln(alpha - i + 1)
        term = (log_binom + i * math.log(q) + (alpha - i) * math.log(1 - q)
                + (i * i - i) / (2 * sigma ** 2))
        total = log_add(total, float(term))
    return total


def log_a_frac(q, sigma, alpha):
    """log A_alpha for fractional alpha: the two series split at z0 (Mironov et al. 2019)."""
    log_a0, log_a1 = -math.inf, -math.inf
    z0 = sigma ** 2 * math.log(1 / q - 1) + 0.5
    i = 0
    while True:
        coef = float(special.binom(alpha, i))
        log_coef = math.log(abs(coef))
        j = alpha - i
        log_t0 = log_coef + i * math.log(q) + j * math.log(1 - q)
        log_t1 = log_coef + j * math.log(q) + i * math.log(1 - q)
        log_e0 = math.log(0.5) + log_erfc((i - z0) / (math.sqrt(2) * sigma))
        log_e1 = math.log(0.5) + log_erfc((z0 - j) / (math.sqrt(2) * sigma))
        log_s0 = log_t0 + (i * i - i) / (2 * sigma ** 2) + log_e0
        log_s1 = log_t1 + (j * j - j) / (2 * sigma ** 2) + log_e1
        if coef > 0:
            log_a0 = log_add(log_a0, log_s0)
            log_a1 = log_add(log_a1, log_s1)
        else:
            log_a0 = log_sub(log_a0, log_s0)
            log_a1 = log_sub(log_a1, log_s1)
        i += 1
        if max(log_s0, log_s1) < -30:
            break
    return log_add(log_a0, log_a1)


def rdp_one_step(q, sigma, alpha):
    if q == 0:
        return 0.0
    if q == 1:
        return alpha / (2 * sigma ** 2)
    if float(alpha).is_integer():
        return log_a_int(q, sigma, int(alpha)) / (alpha - 1)
    return log_a_frac(q, sigma, alpha) / (alpha - 1)


def epsilon(orders, rdp, delta):
    """Balle et al. 2020 Thm 21, minimised over orders; eps >= 0 and the KL shortcut of
    Google's dp_accounting (rdp so small that delta alone covers it -> eps = 0)."""
    orders = np.asarray(orders, dtype=float)
    rdp = np.asarray(rdp, dtype=float)
    eps = rdp - (np.log(delta) + np.log(orders)) / (orders - 1) + np.log((orders - 1) / orders)
    eps = np.where(delta ** 2 + np.expm1(-rdp) >= 0, 0.0, eps)
    best = int(np.nanargmin(eps))
    return max(0.0, float(eps[best])), float(orders[best])


def main():
    rdp_cases = []
    epsilon_cases = []
    for q in SAMPLE_RATES:
        for sigma in NOISE_MULTIPLIERS:
            per_step = [rdp_one_step(q, sigma, a) for a in ORDERS]
            rdp_cases.append({"sampleRate": q, "noiseMultiplier": sigma, "rdpPerStep": per_step})
            for steps in STEPS:
                total = [r * steps for r in per_step]
                for delta in DELTAS:
                    eps, order = epsilon(ORDERS, total, delta)
                    epsilon_cases.append({"sampleRate": q, "noiseMultiplier": sigma,
                                          "steps": steps, "delta": delta,
                                          "epsilon": eps, "order": order})
    out = {
        "generator": "shared/reference/rdp_reference.py",
        "numpy": np.__version__,
        "scipy": __import__("scipy").__version__,
        "orders": ORDERS,
        "logErfc": [{"x": x, "logErfc": log_erfc(x)} for x in LOG_ERFC_POINTS],
        "rdp": rdp_cases,
        "epsilon": epsilon_cases,
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rdp_reference.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {len(rdp_cases)} RDP curves and {len(epsilon_cases)} epsilons to {path}")

    # Published checks, printed for the record (the TS tests assert them directly).
    rdp = np.array([rdp_one_step(1e-5, 1.0, a) * 10 + rdp_one_step(1e-4, 3.0, a) * 4
                    for a in range(2, 33)])
    print("opacus rdp.py doctest (0.336, 23):", epsilon(list(range(2, 33)), rdp, 1e-5))
    rdp = np.array([rdp_one_step(0.04, 1.5, a) * 2250 for a in ORDERS])
    print("opacus accountants_test 7.32911117143:", epsilon(ORDERS, rdp, 1e-5))
    q = 256 / 60000
    steps = 60 * 60000 // 256
    rdp = np.array([rdp_one_step(q, 1.1, a) * steps for a in ORDERS])
    classic = rdp - math.log(1e-5) / (np.array(ORDERS) - 1)
    print("tf privacy mnist 60 epochs 2.92: classic", classic.min(), "improved", epsilon(ORDERS, rdp, 1e-5))


if __name__ == "__main__":
    main()
