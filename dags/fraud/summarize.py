"""summarize: one JSON summary per hour, and an alarm when the flag rate is absurd.

A normal hour flags 0.2-2% of transactions. A much higher rate almost
always means a broken scorer or broken input rather than a fraud wave, so the
task exits 1 above --max-flagged-rate: the run shows up as failed and someone
looks at it before the flags are acted on. The summary is written first
either way.
"""

import argparse
import sys

sys.dont_write_bytecode = True  # keep dags/ free of __pycache__ folders
import common  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--logical-date", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--max-flagged-rate", type=float, required=True)
    args = ap.parse_args()

    hour = common.hour_of(args.logical_date)
    part = common.partition(args.root, hour)
    txns = {t["txn_id"]: t for t in common.read_csv(f"{part}/transactions.csv")}
    scores = common.read_csv(f"{part}/scores.csv")
    if len(scores) != len(txns):
        common.fail(f"{len(scores)} scores for {len(txns)} transactions; score and generate disagree")

    flagged = [s for s in scores if s["flagged"] == "1"]
    by_category = {}
    for s in flagged:
        cat = txns[s["txn_id"]]["merchant_category"]
        by_category[cat] = by_category.get(cat, 0) + 1
    cards = {}
    for s in flagged:
        cards[s["card_id"]] = cards.get(s["card_id"], 0) + 1
    histogram = [0] * 10
    for s in scores:
        histogram[min(int(float(s["score"]) * 10), 9)] += 1

    rate = len(flagged) / len(scores) if scores else 0.0
    summary = {
        "hour": hour.strftime("%Y-%m-%dT%H:00:00Z"),
        "transactions": len(scores),
        "total_amount": round(sum(float(t["amount"]) for t in txns.values()), 2),
        "scorers": sorted({s["scorer"] for s in scores}),
        "flagged": len(flagged),
        "flagged_rate": round(rate, 4),
        "flagged_amount": round(sum(float(s["amount"]) for s in flagged), 2),
        "flagged_by_category": dict(sorted(by_category.items())),
        "cards_with_flags": len(cards),
        "top_flagged_cards": [c for c, _ in sorted(cards.items(), key=lambda kv: (-kv[1], kv[0]))[:5]],
        "score_histogram_deciles": histogram,
        "max_flagged_rate": args.max_flagged_rate,
    }
    summary["alert"] = rate > args.max_flagged_rate
    out = f"{part}/summary.json"
    common.write_json(out, summary)

    common.log(
        f"hour {summary['hour']}: {summary['transactions']} transactions, {summary['flagged']} flagged "
        f"({rate:.2%}, {summary['flagged_amount']:,.2f} of {summary['total_amount']:,.2f}) "
        f"on {summary['cards_with_flags']} cards, scorer {', '.join(summary['scorers'])}"
    )
    if by_category:
        common.log("flagged by category: " + ", ".join(f"{k}={v}" for k, v in summary["flagged_by_category"].items()))
    common.log(f"summary -> {out}")
    if summary["alert"]:
        common.fail(
            f"flagged rate {rate:.2%} is above max_flagged_rate {args.max_flagged_rate:.2%}; "
            "check the scorer and the input before acting on these flags"
        )


if __name__ == "__main__":
    main()
