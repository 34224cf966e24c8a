"""Helpers shared by the churn_retrain tasks (standard library only).

Every task is a separate process started by vane, so anything two tasks must
agree on lives here: the feature list, the train/holdout split, the file
helpers. Writes go to a temporary file first and are then renamed into place,
so a task killed by its timeout never leaves a half-written file for the next
task (or the next retry) to read.
"""

import hashlib
import math
import os
import sys

# The file helpers both example pipelines use live in dags/shared/.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "shared"))
from pipeline_io import fail, log, parse_bool, read_csv, read_json, sha256_file, write_csv, write_json  # noqa: E402,F401

# Columns of the labeled training set, in file order. `customer_id` is the key.
LABELED_COLUMNS = [
    "customer_id",
    "ds",
    "plan",
    "country",
    "tenure_days",
    "age",
    "n_events",
    "n_logins",
    "n_page_views",
    "n_purchases",
    "amount",
    "n_support_tickets",
    "n_payment_failed",
    "n_downgrades",
    "n_cancel_requests",
    "churned",
]

PLANS = ["basic", "standard", "premium"]

# Model inputs, computed from one labeled row by feature_vector().
FEATURES = [
    "log_tenure_days",
    "plan_standard",
    "plan_premium",
    "n_logins",
    "n_page_views",
    "n_purchases",
    "log_amount",
    "n_support_tickets",
    "n_payment_failed",
    "n_downgrades",
    "n_cancel_requests",
]

HOLDOUT_PERCENT = 20


def is_holdout(customer_id, ds):
    """Stable 80/20 split. hashlib, not hash(): Python's hash() of a str changes
    between processes, and train and evaluate run in different processes."""
    digest = hashlib.sha256(f"{ds}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < HOLDOUT_PERCENT


def feature_vector(row):
    plan = row["plan"]
    return [
        math.log1p(float(row["tenure_days"])),
        1.0 if plan == "standard" else 0.0,
        1.0 if plan == "premium" else 0.0,
        float(row["n_logins"]),
        float(row["n_page_views"]),
        float(row["n_purchases"]),
        math.log1p(float(row["amount"])),
        float(row["n_support_tickets"]),
        float(row["n_payment_failed"]),
        float(row["n_downgrades"]),
        float(row["n_cancel_requests"]),
    ]


def sigmoid(z):
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def standardize(x, mean, std):
    return [(v - m) / s for v, m, s in zip(x, mean, std)]


def predict_proba(model, row):
    """Churn probability of one labeled row under a model.json produced by train.py."""
    x = standardize(feature_vector(row), model["standardization"]["mean"], model["standardization"]["std"])
    z = model["bias"] + sum(w * v for w, v in zip(model["weights"], x))
    return sigmoid(z)


def metrics(values):
    """Report numbers to vane: one `name value` line each in the file $VANE_METRICS names.
    Outside vane (no $VANE_METRICS) they are only printed."""
    path = os.environ.get("VANE_METRICS")
    lines = "".join(f"{name} {value}\n" for name, value in values.items())
    if path:
        with open(path, "a") as f:
            f.write(lines)
    log("metrics: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()))
