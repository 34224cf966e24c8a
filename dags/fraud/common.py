"""Helpers shared by the fraud_scoring tasks (standard library only).

The DAG runs hourly, and vane only offers the day ({{ ds }}) and the full
timestamp ({{ logical_date }}) as template values, so the hour partition
<root>/<YYYY-MM-DD>/<HH>/ is derived here, from the logical date, in one place
for every task.
"""

import datetime as dt
import os
import sys

# The file helpers both example pipelines use live in dags/shared/.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "shared"))
from pipeline_io import fail, log, parse_bool, read_csv, read_json, sha256_file, write_csv, write_json  # noqa: E402,F401


def hour_of(logical_date):
    """The UTC hour a run covers, from an RFC 3339 timestamp such as 2026-11-23T14:00:00Z."""
    try:
        when = dt.datetime.fromisoformat(logical_date)
    except ValueError:
        fail(f"--logical-date must be RFC 3339 (e.g. 2026-11-23T14:00:00Z), got {logical_date!r}", code=2)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.astimezone(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)


def partition(root, hour):
    return os.path.join(root, hour.strftime("%Y-%m-%d"), hour.strftime("%H"))


