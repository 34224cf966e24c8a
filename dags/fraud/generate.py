"""generate: produce one hour of card transactions as CSV.

Stands in for "read the last hour from the payments stream". Synthetic and
seeded from the hour being processed, so re-running an hour rewrites the same
file. Volume follows the time of day. A few cards are "compromised" each hour
and produce short bursts of large online purchases, mostly abroad and mostly
in easy-to-resell categories: the pattern the scorer should flag.
"""

import argparse
import math
import random
import sys

sys.dont_write_bytecode = True  # keep dags/ free of __pycache__ folders
import common  # noqa: E402

FIELDS = [
    "txn_id",
    "ts",
    "card_id",
    "card_country",
    "merchant_id",
    "merchant_category",
    "merchant_country",
    "channel",
    "amount",
]
COUNTRIES = ["US", "GB", "DE", "FR", "IN", "BR", "JP", "NG", "RU", "CN"]
HOME_WEIGHTS = [35, 12, 12, 10, 12, 10, 9, 0, 0, 0]
# category -> (relative frequency, median amount)
CATEGORIES = {
    "grocery": (30, 35.0),
    "restaurants": (20, 28.0),
    "fuel": (12, 45.0),
    "fashion": (10, 60.0),
    "travel": (5, 220.0),
    "electronics": (6, 150.0),
    "digital_goods": (8, 12.0),
    "gift_cards": (5, 50.0),
    "crypto": (4, 120.0),
}
FRAUD_CATEGORIES = ["electronics", "digital_goods", "gift_cards", "crypto"]
N_CARDS = 4000


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--logical-date", required=True, help="RFC 3339 start of the hour")
    ap.add_argument("--root", required=True, help="data root; writes <root>/<date>/<HH>/transactions.csv")
    args = ap.parse_args()

    hour = common.hour_of(args.logical_date)
    key = hour.strftime("%Y-%m-%dT%H")
    out = f"{common.partition(args.root, hour)}/transactions.csv"

    cards = random.Random("fraud-cards")  # the card population does not change from hour to hour
    home = [cards.choices(COUNTRIES, weights=HOME_WEIGHTS)[0] for _ in range(N_CARDS)]

    rng = random.Random(f"fraud-txns:{key}")
    busy = 0.35 + 0.65 * max(0.0, math.sin(math.pi * (hour.hour - 5) / 19)) if 5 <= hour.hour else 0.35
    n_normal = int(1400 * busy * rng.uniform(0.9, 1.1))
    names, weights = list(CATEGORIES), [w for w, _ in CATEGORIES.values()]

    txns = []

    def add(card, category, merchant_country, channel, amount, second):
        txns.append(
            {
                "ts": f"{hour:%Y-%m-%dT%H}:{second // 60:02d}:{second % 60:02d}Z",
                "card_id": f"K{card:05d}",
                "card_country": home[card],
                "merchant_id": f"M{names.index(category)}{rng.randrange(300):03d}",
                "merchant_category": category,
                "merchant_country": merchant_country,
                "channel": channel,
                "amount": f"{amount:.2f}",
            }
        )

    for _ in range(n_normal):
        card = rng.randrange(N_CARDS)
        category = rng.choices(names, weights=weights)[0]
        abroad = rng.random() < 0.06
        country = rng.choice(COUNTRIES) if abroad else home[card]
        channel = "online" if rng.random() < (0.8 if category in FRAUD_CATEGORIES else 0.25) else "pos"
        amount = CATEGORIES[category][1] * rng.lognormvariate(0.0, 0.7)
        add(card, category, country, channel, amount, rng.randrange(3600))

    bursts = rng.randint(1, max(1, n_normal // 350))  # busier hours hide more fraud
    n_fraud = 0
    for _ in range(bursts):
        card = rng.randrange(N_CARDS)
        start = rng.randrange(3300)
        country = rng.choice(COUNTRIES[7:]) if rng.random() < 0.7 else home[card]
        for k in range(rng.randint(3, 6)):
            category = rng.choice(FRAUD_CATEGORIES)
            amount = rng.uniform(250.0, 1500.0)
            add(card, category, country, "online", amount, min(start + 40 * k + rng.randrange(30), 3599))
            n_fraud += 1

    txns.sort(key=lambda t: (t["ts"], t["card_id"], t["merchant_id"]))
    for i, t in enumerate(txns, 1):
        t["txn_id"] = f"T{hour:%Y%m%d%H}{i:05d}"

    common.write_csv(out, txns, FIELDS)
    total = sum(float(t["amount"]) for t in txns)
    common.log(f"hour {key}: wrote {len(txns)} transactions (total {total:,.2f}) -> {out}")
    common.log(f"synthetic truth, for reading the scores: {bursts} compromised cards made {n_fraud} of them")


if __name__ == "__main__":
    main()
