"""label: turn one day of events into a labeled training set, one row per customer.

Features are plain per-customer aggregates of the day's events (counts per
event type, total purchase amount) plus the customer's plan, country and
tenure as exported.

The label rule (synthetic ground truth - in production this would be "did the
customer cancel within 30 days", known only later):

    risk = 2.0 * n_cancel_requests + 1.2 * n_downgrades + 1.0 * n_payment_failed
         + 0.8 * n_support_tickets - 0.35 * n_logins - 0.4 * n_purchases
         - 0.3 * ln(1 + tenure_days / 30) + 0.3 * [plan == basic]
         + Normal(0, 0.5)                       # things we never observe
    churned = 1 if risk > -0.35 else 0, then 4% of labels are flipped at random
                                                # mislabeled accounts

The noise is seeded from ds, so the labeled file is reproducible. This task
does not clean anything: bad input passes through as-is, and the validate
task decides whether the day is usable.
"""

import argparse
import math
import random
import sys

sys.dont_write_bytecode = True  # keep dags/ free of __pycache__ folders
import common  # noqa: E402

COUNTED = {
    "login": "n_logins",
    "page_view": "n_page_views",
    "purchase": "n_purchases",
    "support_ticket": "n_support_tickets",
    "payment_failed": "n_payment_failed",
    "plan_downgrade": "n_downgrades",
    "cancel_request": "n_cancel_requests",
}
THRESHOLD = -0.35
FLIP_RATE = 0.04


def risk(row):
    return (
        2.0 * row["n_cancel_requests"]
        + 1.2 * row["n_downgrades"]
        + 1.0 * row["n_payment_failed"]
        + 0.8 * row["n_support_tickets"]
        - 0.35 * row["n_logins"]
        - 0.4 * row["n_purchases"]
        - 0.3 * math.log1p(max(row["tenure_days"], 0) / 30)
        + (0.3 if row["plan"] == "basic" else 0.0)
    )


def label(events, ds):
    """One labeled row per customer of the day's events."""
    customers = {}
    for e in events:
        row = customers.get(e["customer_id"])
        if row is None:
            row = customers[e["customer_id"]] = {
                "customer_id": e["customer_id"],
                "ds": ds,
                "plan": e["plan"],
                "country": e["country"],
                "tenure_days": int(e["tenure_days"]) if e["tenure_days"] != "" else None,
                "age": e["age"],
                "n_events": 0,
                "amount": 0.0,
                **{col: 0 for col in COUNTED.values()},
            }
        row["n_events"] += 1
        if e["event_type"] in COUNTED:
            row[COUNTED[e["event_type"]]] += 1
        if e["event_type"] == "purchase":
            row["amount"] += float(e["amount"])

    rng = random.Random(f"churn-label:{ds}")
    rows = []
    for cid in sorted(customers):
        row = customers[cid]
        score = risk({**row, "tenure_days": row["tenure_days"] or 0}) + rng.gauss(0.0, 0.5)
        churned = 1 if score > THRESHOLD else 0
        if rng.random() < FLIP_RATE:
            churned = 1 - churned
        row["churned"] = churned
        row["amount"] = f"{row['amount']:.2f}"
        if row["tenure_days"] is None:
            row["tenure_days"] = ""
        rows.append(row)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ds", required=True)
    ap.add_argument("--events", required=True, help="raw events CSV from ingest")
    ap.add_argument("--out", required=True, help="labeled CSV to write")
    args = ap.parse_args()

    events = common.read_csv(args.events)
    common.log(f"read {len(events)} events from {args.events}")
    rows = label(events, args.ds)
    common.write_csv(args.out, rows, common.LABELED_COLUMNS)
    positives = sum(r["churned"] for r in rows)
    common.log(f"wrote {len(rows)} labeled customers -> {args.out}")
    common.log(f"churned={positives} ({positives / max(len(rows), 1):.1%}), retained={len(rows) - positives}")


if __name__ == "__main__":
    main()
