"""File and error helpers shared by the example pipelines' tasks (standard library only).

Every task is a separate process started by vane. Writes go to a temporary file
first and are then renamed into place, so a task killed by its timeout never
leaves a half-written file for the next task (or the next retry) to read.
"""

import csv
import hashlib
import json
import os
import sys


def log(msg):
    print(msg, flush=True)


def fail(msg, code=1):
    """Print a one-line reason to stderr and exit non-zero: vane marks the task failed."""
    print(f"ERROR: {msg}", file=sys.stderr, flush=True)
    sys.exit(code)


def parse_bool(text):
    value = str(text).strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off", ""):
        return False
    fail(f"expected a boolean (true/false), got {text!r}", code=2)


def _atomic_write(path, write):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        write(fh)
    os.replace(tmp, path)


def write_csv(path, rows, fieldnames):
    def write(fh):
        writer = csv.DictWriter(fh, fieldnames=fieldnames, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)

    _atomic_write(path, write)


def read_csv(path):
    if not os.path.exists(path):
        fail(f"input file not found: {path} (did the upstream task run for this logical date?)")
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def write_json(path, obj):
    _atomic_write(path, lambda fh: fh.write(json.dumps(obj, indent=2, sort_keys=True) + "\n"))


def read_json(path):
    if not os.path.exists(path):
        fail(f"input file not found: {path}")
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def sha256_file(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()
