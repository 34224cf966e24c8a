"""feature_stats: profile the labeled data and compute the feature scaling.

Runs beside validate (both only need the labeled file). It writes
reports/<ds>/feature_stats.json with:
  - a profile of every numeric column (min / mean / max) and the churn rate
    per plan and per country, for people looking at the day;
  - "standardization": mean and standard deviation of each model feature,
    computed on the TRAINING split only (the holdout stays unseen); train.py
    scales its inputs with these numbers and stores them inside the model.

If yesterday's report exists, the mean of each feature is compared with it and
large moves are printed (a cheap drift signal; it never fails the task).
Rows that cannot be turned into features are skipped and counted here;
explaining why they are bad is validate's job.
"""

import argparse
import datetime as dt
import math
import os
import sys

sys.dont_write_bytecode = True  # keep dags/ free of __pycache__ folders
import common  # noqa: E402

NUMERIC = ["tenure_days", "amount", "n_events", "n_logins", "n_page_views", "n_purchases", "n_support_tickets"]


def mean_std(values):
    m = sum(values) / len(values)
    var = sum((v - m) ** 2 for v in values) / len(values)
    return m, math.sqrt(var)


def rate_by(rows, key):
    groups = {}
    for r in rows:
        g = groups.setdefault(r[key] or "<empty>", [0, 0])
        g[0] += 1
        g[1] += r["churned"] == "1"
    return {k: {"rows": n, "churn_rate": round(p / n, 4)} for k, (n, p) in sorted(groups.items())}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ds", required=True)
    ap.add_argument("--data", required=True, help="labeled CSV from the label task")
    ap.add_argument("--out", required=True, help="JSON file to write")
    args = ap.parse_args()

    rows = common.read_csv(args.data)
    profile = {}
    for col in NUMERIC:
        values = [float(r[col]) for r in rows if r[col] != ""]
        if values:
            profile[col] = {"min": min(values), "mean": round(sum(values) / len(values), 4), "max": max(values)}

    train_x, skipped = [], 0
    for r in rows:
        if common.is_holdout(r["customer_id"], args.ds):
            continue
        try:
            x = common.feature_vector(r)
        except ValueError:
            skipped += 1
            continue
        train_x.append(x)
    if not train_x:
        common.fail("no training row could be featurized")

    mean, std = [], []
    for j, name in enumerate(common.FEATURES):
        m, s = mean_std([x[j] for x in train_x])
        mean.append(round(m, 6))
        std.append(round(s if s > 1e-9 else 1.0, 6))  # a constant feature must not divide by zero

    report = {
        "ds": args.ds,
        "rows": len(rows),
        "profile": profile,
        "churn_rate_by_plan": rate_by(rows, "plan"),
        "churn_rate_by_country": rate_by(rows, "country"),
        "standardization": {
            "features": common.FEATURES,
            "mean": mean,
            "std": std,
            "training_rows": len(train_x),
            "skipped_rows": skipped,
        },
    }
    common.write_json(args.out, report)

    common.log(f"profiled {len(rows)} rows; scaling computed on {len(train_x)} training rows -> {args.out}")
    if skipped:
        common.log(f"skipped {skipped} training rows that cannot be featurized (see validate's report)")
    common.log(
        "churn rate by plan: "
        + ", ".join(f"{k}={v['churn_rate']:.1%}" for k, v in report["churn_rate_by_plan"].items())
    )

    yesterday = (dt.date.fromisoformat(args.ds) - dt.timedelta(days=1)).isoformat()
    previous = os.path.join(os.path.dirname(os.path.dirname(args.out)), yesterday, os.path.basename(args.out))
    if os.path.exists(previous):
        old = common.read_json(previous)["standardization"]
        moves = []
        for name, m, om, os_ in zip(common.FEATURES, mean, old["mean"], old["std"]):
            shift = (m - om) / os_
            if abs(shift) > 0.25:
                moves.append(f"{name} {om:.3f}->{m:.3f} ({shift:+.2f} sd)")
        common.log("drift vs " + yesterday + ": " + ("; ".join(moves) if moves else "no feature mean moved > 0.25 sd"))
    else:
        common.log(f"no report for {yesterday}; skipping the drift comparison")


if __name__ == "__main__":
    main()
