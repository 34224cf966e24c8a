"""ingest: produce one day of customer events as CSV.

Stands in for "export yesterday's events from the product database". The data
is synthetic but fully determined by the logical date (the random generator is
seeded with `ds`), so re-running a day - a retry, a backfill - rewrites the
exact same file.

Each customer has hidden traits (how unhappy, how engaged) that drive which
events they produce; label.py later turns those events into a churn label and
the model has to recover the relationship from the event counts alone.

--corrupt true injects the kinds of damage a broken upstream export causes
(negative ages from a bad birth-date parse, a whole country dropped by a
failed regional export, customers whose plan was lost in a join) so that the
validate task has something to catch.

--outage-marker PATH: while that file exists, the export runs "during an
upstream outage" and delivers only 30% of the customers. Nothing is wrong with
any single row, so only a learned bound on the row count can notice; delete
the file (the upstream recovered) and clear the run to re-ingest the day.
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
    "age",
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


def generate(ds, corrupt=False, fraction=1.0):
    """The day's events; the same arguments always give the same events."""
    rng = random.Random(f"churn-events:{ds}")
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
            "age": min(max(int(rng.gauss(41, 13)), 18), 95),
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
                        "ts": f"{ds}T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z",
                        "event_type": event_type,
                        "amount": f"{amount:.2f}",
                    }
                )

    events.sort(key=lambda e: (e["ts"], e["customer_id"], e["event_type"]))
    for i, event in enumerate(events, 1):
        event["event_id"] = f"E{ds.replace('-', '')}{i:06d}"

    if fraction < 1.0:
        keep = set(random.Random(f"churn-outage:{ds}").sample(ids, int(len(ids) * fraction)))
        events = [e for e in events if int(e["customer_id"][1:]) in keep]
        common.log(f"UPSTREAM OUTAGE: the export delivered {len(keep)} of {len(ids)} customers")

    if corrupt:
        damage = random.Random(f"churn-corrupt:{ds}")
        customers = sorted({e["customer_id"] for e in events})
        negative_age = set(damage.sample(customers, max(1, len(customers) // 30)))
        lost_plan = set(damage.sample(customers, max(1, len(customers) // 12)))
        for e in events:
            if e["customer_id"] in negative_age:
                e["age"] = -abs(int(e["age"]))  # birth dates parsed with the wrong century
            if e["customer_id"] in lost_plan:
                e["plan"] = ""  # the join with the plans table lost these customers
        before = len(events)
        events = [e for e in events if e["country"] != "DE"]  # the EU-central export failed
        common.log(
            "CORRUPT MODE (--param corrupt=true): damaged the day on purpose: "
            f"{len(negative_age)} customers with negative ages, {len(lost_plan)} without a plan, "
            f"{before - len(events)} events of country DE dropped"
        )
    return events


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ds", required=True, help="logical date, YYYY-MM-DD")
    ap.add_argument("--out", required=True, help="CSV file to write")
    ap.add_argument("--corrupt", default="false", help="true: inject bad rows on purpose")
    ap.add_argument("--outage-marker", help="while this file exists, deliver only part of the day")
    args = ap.parse_args()
    fraction = 0.3 if args.outage_marker and os.path.exists(args.outage_marker) else 1.0
    events = generate(args.ds, common.parse_bool(args.corrupt), fraction)
    n_customers = len({e["customer_id"] for e in events})

    common.write_csv(args.out, events, FIELDS)
    by_type = {}
    for e in events:
        by_type[e["event_type"]] = by_type.get(e["event_type"], 0) + 1
    common.log(f"ds={args.ds}: wrote {len(events)} events for {n_customers} customers -> {args.out}")
    common.log("events by type: " + ", ".join(f"{k}={v}" for k, v in sorted(by_type.items())))


if __name__ == "__main__":
    main()
