"""ingest: produce one day of customer events as CSV.

Stands in for "export yesterday's events from the product database". The data
is synthetic but fully determined by the logical date (the random generator is
seeded with `ds`), so re-running a day - a retry, a backfill - rewrites the
exact same file.

Each customer has hidden traits (how unhappy, how engaged) that drive which
events they produce; label.py later turns those events into a churn label and
the model has to recover the relationship from the event counts alone.

--corrupt true injects the kinds of damage a broken upstream export causes
(refunds exported as negative purchase amounts, a missing plan, tenure in the
wrong unit) so that the validate task has something to catch.
"""

import argparse
import math
import os
import random
import sys

sys.dont_write_bytecode = True  # keep dags/ free of __pycache__ folders
import common  # noqa: E402

FIELDS = [
    "event_id",
    "customer_id",
    "ts",
    "event_type",
    "amount",
    "plan",
    "country",
    "tenure_days",
    "device",
]
COUNTRIES = ["US", "GB", "DE", "FR", "IN", "BR", "JP"]
COUNTRY_WEIGHTS = [30, 12, 12, 10, 16, 12, 8]
DEVICES = ["web", "ios", "android"]
PRICE_SCALE = {"basic": 12.0, "standard": 25.0, "premium": 60.0}


def poisson(rng, lam):
    # Knuth's method: fine for the small rates used here.
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def customer_events(rng, plan_rank):
    """Event counts for one customer today, driven by two hidden traits."""
    unhappy = rng.gauss(0.0, 1.0)
    engagement = rng.gauss(0.0, 1.0) - 0.5 * unhappy
    counts = {
        "login": poisson(rng, max(0.3, 2.0 + 0.9 * engagement)),
        "purchase": poisson(rng, max(0.05, 0.35 + 0.25 * engagement + 0.15 * plan_rank)),
        "support_ticket": poisson(rng, max(0.02, 0.2 + 0.35 * unhappy)),
        "payment_failed": poisson(rng, max(0.01, 0.06 + 0.15 * unhappy)),
        "plan_downgrade": 1 if plan_rank > 0 and rng.random() < common.sigmoid(-3.5 + 1.3 * unhappy) else 0,
        "cancel_request": 1 if rng.random() < common.sigmoid(-4.0 + 1.5 * unhappy) else 0,
    }
    counts["page_view"] = sum(poisson(rng, 1.5) for _ in range(counts["login"]))
    if sum(counts.values()) == 0:
        counts["login"] = 1  # only customers with at least one event appear in the export
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ds", required=True, help="logical date, YYYY-MM-DD")
    ap.add_argument("--out", required=True, help="CSV file to write")
    ap.add_argument("--corrupt", default="false", help="true: inject bad rows on purpose")
    args = ap.parse_args()
    corrupt = common.parse_bool(args.corrupt)

    rng = random.Random(f"churn-events:{args.ds}")
    n_customers = rng.randint(1200, 1600)
    ids = sorted(rng.sample(range(1, 100_000), n_customers))

    events = []
    for cid in ids:
        plan = rng.choices(common.PLANS, weights=[50, 35, 15])[0]
        plan_rank = common.PLANS.index(plan)
        profile = {
            "customer_id": f"C{cid:06d}",
            "plan": plan,
            "country": rng.choices(COUNTRIES, weights=COUNTRY_WEIGHTS)[0],
            "tenure_days": min(int(rng.expovariate(1 / 420)), 3650),
            "device": rng.choice(DEVICES),
        }
        for event_type, n in customer_events(rng, plan_rank).items():
            for _ in range(n):
                amount = 0.0
                if event_type == "purchase":
                    amount = round(PRICE_SCALE[plan] * rng.lognormvariate(0.0, 0.6), 2)
                second = rng.randrange(86_400)
                events.append(
                    {
                        **profile,
                        "ts": f"{args.ds}T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z",
                        "event_type": event_type,
                        "amount": f"{amount:.2f}",
                    }
                )

    events.sort(key=lambda e: (e["ts"], e["customer_id"], e["event_type"]))
    for i, event in enumerate(events, 1):
        event["event_id"] = f"E{args.ds.replace('-', '')}{i:06d}"

    if corrupt:
        damage = random.Random(f"churn-corrupt:{args.ds}")
        hit = {"negative_amount": 0, "missing_plan": 0, "tenure_in_hours": 0}
        purchases = [e for e in events if e["event_type"] == "purchase"]
        for e in damage.sample(purchases, max(1, len(purchases) // 8)):
            e["amount"] = f"{-abs(float(e['amount'])) * 3:.2f}"  # refunds exported as purchases
            hit["negative_amount"] += 1
        victims = set(damage.sample(ids, max(1, len(ids) // 20)))
        for e in events:
            if int(e["customer_id"][1:]) in victims:
                e["plan"] = ""  # join with the plans table lost these customers
                e["tenure_days"] = int(e["tenure_days"]) * 24 + 40_000  # hours, not days
        hit["missing_plan"] = hit["tenure_in_hours"] = len(victims)
        common.log(f"CORRUPT MODE (--param corrupt=true): damaged the day on purpose: {hit}")

    common.write_csv(args.out, events, FIELDS)
    by_type = {}
    for e in events:
        by_type[e["event_type"]] = by_type.get(e["event_type"], 0) + 1
    common.log(f"ds={args.ds}: wrote {len(events)} events for {n_customers} customers -> {args.out}")
    common.log("events by type: " + ", ".join(f"{k}={v}" for k, v in sorted(by_type.items())))


if __name__ == "__main__":
    main()
