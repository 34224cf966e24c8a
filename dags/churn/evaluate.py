"""evaluate: score the model on the holdout split and gate the deployment.

Writes metrics.json next to the model (also when the gate fails, so the
failed run can be inspected), then exits 1 if accuracy is below
--min-accuracy or no better than always predicting "retained". Exiting 1 is
the whole mechanism: vane marks the task failed and none of the deploy tasks
after it run.
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
        avg_rank = (i + j + 1) / 2  # 1-based average rank of the tie group
        rank_sum += avg_rank * sum(1 for k in range(i, j) if ranked[k][1] == 1)
        i = j
    pos = sum(labels)
    neg = len(labels) - pos
    if pos == 0 or neg == 0:
        return float("nan")
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ds", required=True)
    ap.add_argument("--data", required=True, help="labeled CSV")
    ap.add_argument("--model", required=True, help="model.json from train")
    ap.add_argument("--out", required=True, help="metrics.json to write")
    ap.add_argument("--min-accuracy", type=float, required=True)
    ap.add_argument("--threshold", type=float, default=0.5, help="probability above which we predict churn")
    args = ap.parse_args()

    model = common.read_json(args.model)
    rows = [r for r in common.read_csv(args.data) if common.is_holdout(r["customer_id"], args.ds)]
    ys = [int(r["churned"]) for r in rows]
    ps = [common.predict_proba(model, r) for r in rows]
    preds = [1 if p >= args.threshold else 0 for p in ps]

    tp = sum(1 for y, q in zip(ys, preds) if y == 1 and q == 1)
    fp = sum(1 for y, q in zip(ys, preds) if y == 0 and q == 1)
    fn = sum(1 for y, q in zip(ys, preds) if y == 1 and q == 0)
    tn = len(ys) - tp - fp - fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    metrics = {
        "ds": args.ds,
        "holdout_rows": len(rows),
        "accuracy": round((tp + tn) / len(ys), 4),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0,
        "auc": round(auc(ys, ps), 4),
        "log_loss": round(
            -sum(math.log(min(max(p if y else 1 - p, 1e-12), 1.0)) for y, p in zip(ys, ps)) / len(ys), 4
        ),
        "majority_baseline_accuracy": round(max(sum(ys), len(ys) - sum(ys)) / len(ys), 4),
        "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
        "threshold": args.threshold,
        "min_accuracy": args.min_accuracy,
    }
    # Two conditions: the agreed bar, and beating the model that always answers
    # "retained" (with ~30% churners, that trivial model already scores ~0.7).
    problems = []
    if metrics["accuracy"] < args.min_accuracy:
        problems.append(f"accuracy {metrics['accuracy']:.4f} < min_accuracy {args.min_accuracy}")
    if metrics["accuracy"] <= metrics["majority_baseline_accuracy"]:
        problems.append(
            f"accuracy {metrics['accuracy']:.4f} does not beat the always-'retained' baseline "
            f"{metrics['majority_baseline_accuracy']:.4f}"
        )
    metrics["passed_gate"] = not problems
    common.write_json(args.out, metrics)

    common.log(f"holdout: {len(rows)} customers, {sum(ys)} churned")
    common.log(
        f"accuracy={metrics['accuracy']:.4f} precision={metrics['precision']:.4f} recall={metrics['recall']:.4f} "
        f"auc={metrics['auc']:.4f} log_loss={metrics['log_loss']:.4f} "
        f"(always-'retained' baseline: {metrics['majority_baseline_accuracy']:.4f})"
    )
    common.log(f"metrics -> {args.out}")
    if problems:
        common.fail(f"GATE FAILED: {'; '.join(problems)}; this model will not be deployed")
    common.log(
        f"GATE PASSED: accuracy {metrics['accuracy']:.4f} >= min_accuracy {args.min_accuracy} "
        f"and beats the baseline {metrics['majority_baseline_accuracy']:.4f}"
    )


if __name__ == "__main__":
    main()
