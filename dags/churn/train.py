"""train: fit a logistic regression on the training split, in plain Python.

Stochastic gradient descent with L2 regularisation. The shuffling order comes
from the SEED environment variable (set in the DAG file), so the same data and
the same SEED always give the same weights. Inputs are standardized with the
training rows' mean and standard deviation, and that scaling is saved inside
the model so whoever serves it applies exactly the same transformation.

--quality worse trains on labels shuffled across customers, the effect of a
broken join between labels and features: the model learns next to nothing,
which is what the canary gate is there to catch.
"""

import argparse
import math
import os
import random
import sys

sys.dont_write_bytecode = True  # keep dags/ free of __pycache__ folders
import common  # noqa: E402


def log_loss(w, b, xs, ys):
    total = 0.0
    for x, y in zip(xs, ys):
        p = min(max(common.sigmoid(b + sum(wi * xi for wi, xi in zip(w, x))), 1e-12), 1 - 1e-12)
        total -= y * math.log(p) + (1 - y) * math.log(1 - p)
    return total / len(xs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ds", required=True)
    ap.add_argument("--data", required=True, help="labeled CSV")
    ap.add_argument("--out", required=True, help="model.json to write")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--learning-rate", type=float, default=0.05)
    ap.add_argument("--l2", type=float, default=0.001)
    ap.add_argument("--quality", choices=["normal", "worse"], default="normal")
    args = ap.parse_args()
    seed = int(os.environ.get("SEED", "7"))

    rows = [r for r in common.read_csv(args.data) if not common.is_holdout(r["customer_id"], args.ds)]
    raw = [common.feature_vector(r) for r in rows]
    columns = list(zip(*raw))
    mean = [sum(c) / len(c) for c in columns]
    std = [math.sqrt(sum((v - m) ** 2 for v in c) / len(c)) or 1.0 for c, m in zip(columns, mean)]
    stats = {"mean": [round(m, 8) for m in mean], "std": [round(s, 8) for s in std]}
    xs = [common.standardize(x, stats["mean"], stats["std"]) for x in raw]
    ys = [int(r["churned"]) for r in rows]
    if args.quality == "worse":
        random.Random(seed).shuffle(ys)
        common.log("QUALITY worse (--param candidate_quality=worse): labels shuffled on purpose")
    common.log(f"training on {len(rows)} rows x {len(common.FEATURES)} features (seed={seed}, epochs={args.epochs})")

    rng = random.Random(seed)
    w = [rng.gauss(0.0, 0.01) for _ in common.FEATURES]
    b = 0.0
    order = list(range(len(xs)))
    for epoch in range(1, args.epochs + 1):
        rng.shuffle(order)
        lr = args.learning_rate / math.sqrt(epoch)
        for i in order:
            x, y = xs[i], ys[i]
            g = common.sigmoid(b + sum(wi * xi for wi, xi in zip(w, x))) - y
            for j, xj in enumerate(x):
                w[j] -= lr * (g * xj + args.l2 * w[j])
            b -= lr * g
        if epoch == 1 or epoch % 10 == 0 or epoch == args.epochs:
            common.log(f"epoch {epoch:3d}: train log loss {log_loss(w, b, xs, ys):.4f}")

    model = {
        "model_type": "logistic_regression",
        "feature_names": common.FEATURES,
        "weights": [round(v, 8) for v in w],
        "bias": round(b, 8),
        "standardization": {"mean": stats["mean"], "std": stats["std"]},
        "ds": args.ds,
        "run_id": os.environ.get("VANE_RUN_ID", ""),
        "training_rows": len(rows),
        "training_positive_rate": round(sum(ys) / len(ys), 4),
        "hyperparameters": {"epochs": args.epochs, "learning_rate": args.learning_rate, "l2": args.l2, "seed": seed},
        "train_log_loss": round(log_loss(w, b, xs, ys), 6),
    }
    common.write_json(args.out, model)
    top = sorted(zip(common.FEATURES, w), key=lambda fw: -abs(fw[1]))[:4]
    common.log("largest weights: " + ", ".join(f"{f}={v:+.2f}" for f, v in top))
    common.log(f"model -> {args.out}")


if __name__ == "__main__":
    main()
