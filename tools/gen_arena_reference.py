#!/usr/bin/env python3
"""Independent reference values for kaival's arena statistics (numpy only).

Writes testdata/arena/reference.json:
  - Bradley-Terry maximum-likelihood ratings by Hunter's MM algorithm (not the
    Newton solver kaival uses), ties counted half, plus asymptotic standard
    errors from the Fisher information (to check the bootstrap's widths);
  - style-controlled ratings by a logistic regression fitted with numpy's pinv;
  - Krippendorff's alpha (interval, ordinal) by the pairwise-difference form,
    including Krippendorff's own worked example (published 0.849 / 0.815);
  - expert scores: 10% trimmed means of weighted 0-100 review totals.
Run: /usr/bin/python3 tools/gen_arena_reference.py
"""
import json
import math
import os

import numpy as np

OUT = os.path.join(os.path.dirname(__file__), "..", "testdata", "arena", "reference.json")
SCALE = 400.0 / math.log(10.0)


def simulate_battles(rng, strengths, n, tie_rate, pair_weights=None):
    m = len(strengths)
    out = []
    for _ in range(n):
        a, b = rng.choice(m, size=2, replace=False)
        if pair_weights is not None and rng.random() > pair_weights[min(a, b)][max(a, b)]:
            continue
        u = rng.random()
        if u < tie_rate:
            out.append([int(a), int(b), "tie" if rng.random() < 0.7 else "both_bad"])
            continue
        p = 1.0 / (1.0 + math.exp(-(strengths[a] - strengths[b])))
        out.append([int(a), int(b), "model_a" if rng.random() < p else "model_b"])
    return out


def wins_matrix(m, battles):
    w = np.zeros((m, m))
    for a, b, res in battles:
        if res == "model_a":
            w[a, b] += 1
        elif res == "model_b":
            w[b, a] += 1
        else:
            w[a, b] += 0.5
            w[b, a] += 0.5
    return w


def bt_mm(m, battles, iters=200000, tol=1e-14):
    """Hunter (2004) minorise-maximise: p_i <- W_i / sum_j n_ij / (p_i + p_j)."""
    w = wins_matrix(m, battles)
    n = w + w.T
    wins = w.sum(axis=1)
    p = np.ones(m)
    for _ in range(iters):
        denom = (n / (p[:, None] + p[None, :])).sum(axis=1)
        new = wins / denom
        new /= math.exp(np.log(new).mean())
        if np.max(np.abs(np.log(new) - np.log(p))) < tol:
            p = new
            break
        p = new
    theta = np.log(p)
    return theta - theta.mean(), w


def bt_standard_errors(theta, w):
    n = w + w.T
    d = theta[:, None] - theta[None, :]
    pr = 1.0 / (1.0 + np.exp(-d))
    h = n * pr * (1 - pr)
    info = np.diag(h.sum(axis=1)) - h
    cov = np.linalg.pinv(info)  # covariance of the centred strengths
    return np.sqrt(np.diag(cov))


def style_of(rng):
    return {"length": float(rng.integers(50, 2000)), "headers": float(rng.integers(0, 4)),
            "list_items": float(rng.integers(0, 8)), "bold": float(rng.integers(0, 5))}


def norm_diff(a, b):
    return (a - b) / (a + b) if a + b > 0 else 0.0


def style_fit(m, battles):
    keys = ["length", "headers", "list_items", "bold"]
    n = len(battles)
    s = np.array([[norm_diff(bt["style_a"][k], bt["style_b"][k]) for k in keys] for bt in battles])
    for c in range(4):
        sd = s[:, c].std()
        s[:, c] = (s[:, c] - s[:, c].mean()) / sd if sd > 1e-12 else 0.0
    x = np.zeros((n, m + 4))
    y = np.zeros(n)
    for k, bt in enumerate(battles):
        x[k, bt["a"]] += 1
        x[k, bt["b"]] -= 1
        x[k, m:] = s[k]
        y[k] = {"model_a": 1.0, "model_b": 0.0}.get(bt["winner"], 0.5)
    beta = np.zeros(m + 4)
    for _ in range(200):
        pr = 1.0 / (1.0 + np.exp(-(x @ beta)))
        grad = x.T @ (y - pr)
        hess = (x * (pr * (1 - pr))[:, None]).T @ x
        step = np.linalg.pinv(hess) @ grad
        beta += step
        if np.max(np.abs(step)) < 1e-13:
            break
    model = beta[:m] - beta[:m].mean()
    return model, beta[m:]


def alpha_pairwise(units, metric):
    units = [u for u in units if len(u) >= 2]
    vals = [v for u in units for v in u]
    n = len(vals)
    if n == 0:
        return None
    levels = sorted(set(vals))
    count = {v: vals.count(v) for v in levels}

    def delta(c, k):
        if metric == "interval":
            return (c - k) ** 2
        lo, hi = min(c, k), max(c, k)
        s = sum(count[g] for g in levels if lo <= g <= hi) - (count[c] + count[k]) / 2.0
        return s * s

    d_o = sum(sum(delta(u[i], u[j]) for i in range(len(u)) for j in range(len(u)) if i != j) / (len(u) - 1)
              for u in units) / n
    d_e = sum(delta(vals[i], vals[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    if d_e == 0:
        return None
    return 1.0 - d_o / d_e


def trimmed_mean(xs, frac):
    xs = sorted(xs)
    cut = int(math.floor(frac * len(xs)))
    kept = xs[cut:len(xs) - cut]
    return sum(kept) / len(kept)


def main():
    rng = np.random.default_rng(20261125)
    ref = {"generator": "tools/gen_arena_reference.py", "bt": [], "style": None, "alpha": [], "expert": None}

    # Bradley-Terry cases: dense, and sparse with uneven pair coverage.
    cases = [("dense6", [0.0, 0.4, -0.3, 1.1, 0.2, -0.8], 4000, 0.15, None),
             ("sparse8", list(rng.normal(0, 0.7, 8)), 3000, 0.1, rng.random((8, 8)) * 0.9 + 0.1)]
    for name, strengths, n, tie_rate, pw in cases:
        battles = simulate_battles(rng, strengths, n, tie_rate, pw)
        m = len(strengths)
        theta, w = bt_mm(m, battles)
        se = bt_standard_errors(theta, w)
        ref["bt"].append({"name": name, "models": m, "battles": battles,
                          "ratings": [1000.0 + SCALE * t for t in theta],
                          "rating_se": [SCALE * s for s in se],
                          "win_rate": [[None if (w[i, j] + w[j, i]) == 0 or i == j else w[i, j] / (w[i, j] + w[j, i])
                                        for j in range(m)] for i in range(m)]})

    # Style control: answers' length pushes votes regardless of the model.
    m = 5
    strengths = [0.0, 0.3, -0.2, 0.6, 0.1]
    sbattles = []
    for _ in range(2000):
        a, b = (int(v) for v in rng.choice(m, size=2, replace=False))
        sa, sb = style_of(rng), style_of(rng)
        eta = strengths[a] - strengths[b] + 1.2 * norm_diff(sa["length"], sb["length"])
        p = 1.0 / (1.0 + math.exp(-eta))
        u = rng.random()
        winner = "tie" if u < 0.1 else ("model_a" if rng.random() < p else "model_b")
        sbattles.append({"a": a, "b": b, "winner": winner, "style_a": sa, "style_b": sb})
    model, coef = style_fit(m, sbattles)
    keys = ["length", "headers", "list_items", "bold"]
    compact = [[bt["a"], bt["b"], bt["winner"], [bt["style_a"][k] for k in keys], [bt["style_b"][k] for k in keys]]
               for bt in sbattles]
    ref["style"] = {"models": m, "battles": compact, "ratings": [1000.0 + SCALE * t for t in model],
                    "coefficients": list(coef)}

    # Krippendorff's worked example (4 coders, 12 units; None = missing).
    coders = [[1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
              [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
              [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
              [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None]]
    units = [[c[u] for c in coders if c[u] is not None] for u in range(12)]
    a_int, a_ord = alpha_pairwise(units, "interval"), alpha_pairwise(units, "ordinal")
    assert abs(a_int - 0.849) < 1e-3 and abs(a_ord - 0.815) < 1e-3, (a_int, a_ord)
    ref["alpha"].append({"name": "krippendorff2011", "units": units, "interval": a_int, "ordinal": a_ord})
    units = [[int(v) for v in rng.integers(1, 8, size=int(rng.integers(1, 6)))] for _ in range(40)]
    ref["alpha"].append({"name": "random7", "units": units, "interval": alpha_pairwise(units, "interval"),
                         "ordinal": alpha_pairwise(units, "ordinal")})

    # Expert reviews: 3 models x 6 items x 4 reviewers, two weighted criteria.
    criteria = [{"name": "accuracy", "weight": 2.0, "min": 1, "max": 5},
                {"name": "clarity", "weight": 1.0, "min": 1, "max": 7}]
    items, scores = {}, []
    quality = {"m1": 0.8, "m2": 0.5, "m3": 0.3}
    for model, q in quality.items():
        for k in range(6):
            item = f"{model}-item{k}"
            items[item] = model
            for r in range(4):
                harsh = -1 if r == 3 else 0
                for c in criteria:
                    span = c["max"] - c["min"]
                    v = c["min"] + q * span + harsh + rng.normal(0, 0.8)
                    v = int(min(c["max"], max(c["min"], round(v))))
                    scores.append({"item": item, "reviewer": f"r{r}", "criterion": c["name"], "value": v})
    totals = {}
    for item, model in items.items():
        for r in range(4):
            num = den = 0.0
            for c in criteria:
                v = next(s["value"] for s in scores if s["item"] == item and s["reviewer"] == f"r{r}"
                         and s["criterion"] == c["name"])
                num += c["weight"] * (v - c["min"]) / (c["max"] - c["min"])
                den += c["weight"]
            totals.setdefault(model, []).append(100.0 * num / den)
    expert_alpha = {}
    for c in criteria:
        u = [[s["value"] for s in scores if s["item"] == it and s["criterion"] == c["name"]] for it in items]
        expert_alpha[c["name"]] = {"interval": alpha_pairwise(u, "interval"), "ordinal": alpha_pairwise(u, "ordinal")}
    ref["expert"] = {"criteria": criteria, "items": items, "scores": scores,
                     "model_scores": {m_: trimmed_mean(t, 0.1) for m_, t in totals.items()},
                     "alpha": expert_alpha}

    with open(OUT, "w") as f:
        json.dump(ref, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
