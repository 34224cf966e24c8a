"""score: give every transaction of the hour a fraud score in [0, 1].

Scorer, in order of preference:
  1. the model published at --model (by default $VANE_WORK/serving/fraud/model.json),
     a logistic regression over the features below, stored as JSON:
         {"model_type": "logistic_regression", "version": "...",
          "feature_names": [...], "weights": [...], "bias": -9.0}
     dags/fraud/reference_model.json is an example; copy it there to use it.
  2. if that file is missing or unusable (unreadable, unknown feature, wrong
     number of weights), the BUILT-IN RULE below. The hour is still scored,
     with a simpler scorer, instead of failing: the log and every output row
     say which scorer was used.

Built-in rule (points add up, capped at 1.0):
    +0.30  amount > 400
    +0.30  the card made 3 or more transactions this hour (velocity)
    +0.20  merchant country differs from the card's country
    +0.20  high-risk category (gift_cards, crypto, digital_goods)
    +0.15  online
    +0.10  night (00:00-05:59 UTC)
A transaction is flagged when its score >= --threshold.
"""

import argparse
import json
import math
import os
import sys

sys.dont_write_bytecode = True  # keep dags/ free of __pycache__ folders
import common  # noqa: E402

HIGH_RISK = {"gift_cards", "crypto", "digital_goods"}
FEATURES = ["log_amount", "foreign", "online", "night", "card_txns_in_hour", "high_risk_category"]


def features(txn, card_counts, hour):
    return {
        "log_amount": math.log1p(float(txn["amount"])),
        "foreign": 1.0 if txn["merchant_country"] != txn["card_country"] else 0.0,
        "online": 1.0 if txn["channel"] == "online" else 0.0,
        "night": 1.0 if hour.hour < 6 else 0.0,
        "card_txns_in_hour": float(card_counts[txn["card_id"]]),
        "high_risk_category": 1.0 if txn["merchant_category"] in HIGH_RISK else 0.0,
    }


def rule_score(txn, f):
    score = 0.0
    score += 0.30 if float(txn["amount"]) > 400 else 0.0
    score += 0.30 if f["card_txns_in_hour"] >= 3 else 0.0
    score += 0.20 * f["foreign"] + 0.20 * f["high_risk_category"]
    score += 0.15 * f["online"] + 0.10 * f["night"]
    return min(score, 1.0)


def load_model(path):
    """Returns (model, None) or (None, reason it cannot be used)."""
    if not os.path.exists(path):
        return None, f"no model at {path}"
    try:
        with open(path, encoding="utf-8") as fh:
            model = json.load(fh)
        if model.get("model_type") != "logistic_regression":
            return None, f"model_type {model.get('model_type')!r} is not logistic_regression"
        names, weights = model["feature_names"], model["weights"]
        unknown = [n for n in names if n not in FEATURES]
        if unknown:
            return None, f"unknown features {unknown} (this scorer computes {FEATURES})"
        if len(weights) != len(names):
            return None, f"{len(weights)} weights for {len(names)} features"
        if not all(math.isfinite(float(v)) for v in [*weights, model["bias"]]):
            return None, "non-finite weight"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"cannot read {path}: {exc}"
    return model, None


def model_score(model, f):
    z = model["bias"] + sum(w * f[n] for n, w in zip(model["feature_names"], model["weights"]))
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--logical-date", required=True)
    ap.add_argument("--root", required=True, help="data root used by generate")
    ap.add_argument("--model", required=True, help="published model JSON; may be absent")
    ap.add_argument("--threshold", type=float, required=True)
    args = ap.parse_args()

    hour = common.hour_of(args.logical_date)
    part = common.partition(args.root, hour)
    txns = common.read_csv(f"{part}/transactions.csv")
    common.log(f"read {len(txns)} transactions from {part}/transactions.csv")

    model, reason = load_model(args.model)
    if model:
        scorer = f"model:{model.get('version', 'unversioned')}"
        common.log(f"scorer: {scorer} from {args.model}")
    else:
        scorer = "builtin_rule"
        common.log(f"scorer: FALLBACK to the built-in rule ({reason})")

    card_counts = {}
    for t in txns:
        card_counts[t["card_id"]] = card_counts.get(t["card_id"], 0) + 1

    rows = []
    for t in txns:
        f = features(t, card_counts, hour)
        score = model_score(model, f) if model else rule_score(t, f)
        rows.append(
            {
                "txn_id": t["txn_id"],
                "card_id": t["card_id"],
                "amount": t["amount"],
                "score": f"{score:.4f}",
                "flagged": 1 if score >= args.threshold else 0,
                "scorer": scorer,
            }
        )

    out = f"{part}/scores.csv"
    common.write_csv(out, rows, ["txn_id", "card_id", "amount", "score", "flagged", "scorer"])
    flagged = sum(r["flagged"] for r in rows)
    common.log(f"flagged {flagged} of {len(rows)} at threshold {args.threshold} -> {out}")


if __name__ == "__main__":
    main()
