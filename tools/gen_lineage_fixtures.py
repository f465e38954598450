#!/usr/bin/python3
"""Reference data for kaival's lineage tests (run with Debian's /usr/bin/python3).

    tools/gen_lineage_fixtures.py stats   -> testdata/lineage/stats_reference.json

`stats`: values computed independently of kaival's C++ (mpmath for tail
probabilities at 50-digit precision, numpy for correlations, SVD-based
Procrustes and CKA, brute force over all permutations for linear assignment,
textbook Holm / Benjamini-Hochberg) so the C++ statistics library is checked
against a second implementation rather than against its own output.
"""
import itertools
import json
import math
import os
import sys

import mpmath
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "testdata", "lineage")
mpmath.mp.dps = 50


def log10(x):
    return float(mpmath.log10(x)) if x > 0 else float("-inf")


def normal_sf(z):
    return mpmath.mpf(1) / 2 * mpmath.erfc(mpmath.mpf(z) / mpmath.sqrt(2))


def t_sf(t, df):
    t = mpmath.mpf(t)
    df = mpmath.mpf(df)
    # P(T > t) = 1 - CDF; integrate the density in the tail exactly.
    c = mpmath.gamma((df + 1) / 2) / (mpmath.sqrt(df * mpmath.pi) * mpmath.gamma(df / 2))
    f = lambda x: c * (1 + x * x / df) ** (-(df + 1) / 2)
    if t >= 0:
        return mpmath.quad(f, [t, mpmath.inf])
    return 1 - mpmath.quad(f, [-t, mpmath.inf])


def chi2_sf(x, df):
    return mpmath.gammainc(mpmath.mpf(df) / 2, mpmath.mpf(x) / 2, mpmath.inf, regularized=True)


def binom_sf(k, n, p):
    p = mpmath.mpf(p)
    return mpmath.fsum(mpmath.binomial(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))


def avg_ranks(x):
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="mergesort")
    r = np.empty(len(x))
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and x[order[j + 1]] == x[order[i]]:
            j += 1
        r[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return r


def holm(p):
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out = [0.0] * m
    run = 0.0
    for rank, i in enumerate(order):
        run = max(run, min(1.0, (m - rank) * p[i]))
        out[i] = run
    return out


def bh(p):
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out = [0.0] * m
    run = 1.0
    for rank in range(m - 1, -1, -1):
        i = order[rank]
        run = min(run, min(1.0, p[i] * m / (rank + 1)))
        out[i] = run
    return out


def rencontres_sf(m, n):
    tot = mpmath.mpf(0)
    for k in range(m, n + 1):
        d = mpmath.fsum((-1) ** j / mpmath.factorial(j) for j in range(0, n - k + 1))
        tot += d / mpmath.factorial(k)
    return tot


def stats_reference():
    rng = np.random.default_rng(20260401)
    ref = {}
    ref["normal_sf"] = [[z, log10(normal_sf(z))] for z in [-3.0, -0.5, 0.0, 0.7, 1.96, 2.5758, 5.0, 7.9, 8.1, 12.0, 20.0, 38.0, 50.0]]
    ref["t_sf"] = [[t, df, log10(t_sf(t, df))] for t, df in [(0.0, 5), (1.5, 3), (-2.0, 10), (2.2281, 10), (6.0, 30), (25.0, 100), (40.0, 8)]]
    ref["chi2_sf"] = [[x, df, log10(chi2_sf(x, df))] for x, df in [(0.5, 1), (3.84, 1), (10.0, 4), (30.0, 10), (200.0, 20), (2000.0, 60), (5.0, 40)]]
    ref["binomial_sf"] = [[k, n, p, log10(binom_sf(k, n, p))] for k, n, p in [(1, 10, 0.1), (5, 20, 0.1), (50, 100, 0.01), (200, 200, 0.5), (3, 1000, 0.001)]]

    # Correlations on random data with ties.
    x = rng.integers(0, 12, size=40).astype(float)
    y = x * 0.5 + rng.normal(size=40)
    rx, ry = avg_ranks(x), avg_ranks(y)
    ref["correlation"] = {
        "x": x.tolist(), "y": y.tolist(),
        "pearson": float(np.corrcoef(x, y)[0, 1]),
        "spearman": float(np.corrcoef(rx, ry)[0, 1]),
        "ranks_x": rx.tolist(),
    }

    # p-value combinations and corrections.
    ps = [0.001, 0.04, 0.3, 0.02, 0.9, 0.5, 1e-8, 0.011]
    lp = [math.log10(p) for p in ps]
    k = len(ps)
    fisher_x = -2 * sum(math.log(p) for p in ps)
    stouffer_z = sum(float(mpmath.sqrt(2) * mpmath.erfinv(1 - 2 * mpmath.mpf(p))) for p in ps) / math.sqrt(k)
    t_cauchy = sum(math.tan((0.5 - p) * math.pi) for p in ps) / k
    ref["combine"] = {
        "log10p": lp,
        "fisher": log10(chi2_sf(fisher_x, 2 * k)),
        "stouffer": log10(normal_sf(stouffer_z)),
        "bonferroni_min": math.log10(min(1.0, k * min(ps))),
        "cauchy": log10(mpmath.mpf(1) / 2 - mpmath.atan(t_cauchy) / mpmath.pi),
        "holm": [math.log10(v) for v in holm(ps)],
        "bh": [math.log10(v) for v in bh(ps)],
    }
    # Far-tail combination: p-values far below double range.
    tiny = [-400.0, -350.0, -2.0]
    fx = -2 * math.log(10) * sum(tiny)
    ref["combine_far"] = {"log10p": tiny, "fisher": log10(chi2_sf(fx, 6)),
                          "cauchy": float(mpmath.log10(1 / (mpmath.pi * (
                              (mpmath.mpf(10) ** 400 + mpmath.mpf(10) ** 350) / mpmath.pi + mpmath.tan((mpmath.mpf(0.5) - mpmath.mpf("0.01")) * mpmath.pi)) / 3)))}

    ref["rencontres_sf"] = [[m, n, log10(rencontres_sf(m, n))] for m, n in [(1, 5), (2, 5), (3, 10), (5, 10), (10, 10), (9, 10), (4, 60)]]

    # Linear assignment by brute force.
    cases = []
    for n, m in [(4, 4), (5, 7), (6, 6), (3, 8)]:
        c = rng.normal(size=(n, m)).round(3)
        best, best_assign = None, None
        for cols in itertools.permutations(range(m), n):
            s = sum(c[i, cols[i]] for i in range(n))
            if best is None or s < best - 1e-12:
                best, best_assign = s, cols
        cases.append({"cost": c.tolist(), "min_cost": float(best), "assign": list(best_assign)})
    ref["assignment"] = cases

    # Procrustes: recover a random rotation from noisy paired rows.
    n, d = 50, 6
    a = rng.normal(size=(n, d))
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    b = a @ q.T + 0.01 * rng.normal(size=(n, d))  # b q ~ a
    u, s, vt = np.linalg.svd(b.T @ a)
    ref["procrustes"] = {"a": a.tolist(), "b": b.tolist(), "r": (u @ vt).tolist()}

    # Linear CKA (centred) and uncentred Gram similarity.
    x = rng.normal(size=(30, 5))
    y = x @ rng.normal(size=(5, 7)) + 0.5 * rng.normal(size=(30, 7))
    def cka(x, y):
        x = x - x.mean(0)
        y = y - y.mean(0)
        return float(np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))
    ref["cka"] = {"x": x.tolist(), "y": y.tolist(), "cka": cka(x, y)}

    # Moments of tr(K L) under random signed permutations of L's samples,
    # by exhaustive enumeration over all n! 2^n signed permutations (n = 5).
    n = 5
    xk = rng.normal(size=(n, 3))
    yl = rng.normal(size=(n, 4)) + 0.3
    K, L = xk @ xk.T, yl @ yl.T
    vals = []
    for perm in itertools.permutations(range(n)):
        for signs in itertools.product([-1.0, 1.0], repeat=n):
            s = np.array(signs)
            lp_ = (s[:, None] * s[None, :]) * L[np.ix_(perm, perm)]
            vals.append(float((K * lp_).sum()))
    vals = np.array(vals)
    t = float((K * L).sum())
    ref["gram_moments"] = {"k": K.tolist(), "l": L.tolist(), "t": t, "mean": float(vals.mean()), "sd": float(vals.std())}
    return ref


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else "stats"
    os.makedirs(OUT, exist_ok=True)
    if what == "stats":
        path = os.path.join(OUT, "stats_reference.json")
        with open(path, "w") as f:
            json.dump(stats_reference(), f, indent=1)
        print("wrote", path)
    else:
        sys.exit(f"unknown target {what}")


if __name__ == "__main__":
    main()
