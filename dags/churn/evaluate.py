"""evaluate: score one model on an evaluation set and report the numbers to vane.

vane's deploy task runs this for the candidate, and for the production model
when production has no numbers on this evaluation set yet. The gates of the
rollout then compare the two (`accuracy >= production.accuracy - 0.01`).
"""

import argparse
import math
import sys

sys.dont_write_bytecode = True  # keep dags/ free of __pycache__ folders
import common  # noqa: E402


def auc(labels, scores):
    """Probability that a random positive scores above a random negative (ties count half)."""
    ranked = sorted(zip(scores, labels))
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        rank_sum += (i + j + 1) / 2 * sum(1 for k in range(i, j) if ranked[k][1] == 1)
        i = j
    pos = sum(labels)
    neg = len(labels) - pos
    if pos == 0 or neg == 0:
        return float("nan")
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="model.json")
    ap.add_argument("--data", required=True, help="labeled CSV")
    args = ap.parse_args()
    model = common.read_json(args.model)
    rows = common.read_csv(args.data)
    ys = [int(r["churned"]) for r in rows]
    ps = [common.predict_proba(model, r) for r in rows]
    correct = sum(1 for y, p in zip(ys, ps) if (p >= 0.5) == (y == 1))
    loss = -sum(math.log(min(max(p if y else 1 - p, 1e-12), 1.0)) for y, p in zip(ys, ps)) / len(ys)
    common.metrics(
        {
            "accuracy": round(correct / len(ys), 6),
            "auc": round(auc(ys, ps), 6),
            "log_loss": round(loss, 6),
            "eval_rows": len(ys),
        }
    )


if __name__ == "__main__":
    main()
