#!/usr/bin/env python3
"""Cross-check the Rust consistency table against the real posthog-python SDK.

Reads flags/tests/fixtures/hash_consistency.csv and recomputes every column with the SDK's
own hashing (`posthog.feature_flags._hash`) and variant selection. Not run by cargo; run it
by hand or from CI after installing the SDK:

    python3 -m venv .venv && .venv/bin/pip install posthog
    .venv/bin/python flags/tests/check_hash_fixture.py

Exits non-zero on the first mismatch.
"""

import csv
import pathlib
import sys

from posthog.feature_flags import _hash, get_matching_variant

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "hash_consistency.csv"

MULTIVARIATE = {
    "key": "multivariate-flag",
    "filters": {
        "multivariate": {
            "variants": [
                {"key": "first-variant", "rollout_percentage": 50},
                {"key": "second-variant", "rollout_percentage": 20},
                {"key": "third-variant", "rollout_percentage": 20},
                {"key": "fourth-variant", "rollout_percentage": 5},
                {"key": "fifth-variant", "rollout_percentage": 5},
            ]
        }
    },
}


def expected_row(distinct_id):
    simple = _hash("simple-flag", distinct_id)
    variant_hash = _hash("multivariate-flag", distinct_id, salt="variant")
    holdout = _hash("holdout", distinct_id, separator="-")
    in_multi = _hash("multivariate-flag", distinct_id) <= 0.55
    variant = get_matching_variant(MULTIVARIATE, distinct_id) if in_multi else None
    return simple, variant_hash, holdout, simple <= 0.45, variant or "false"


def main():
    rows = list(csv.DictReader(FIXTURE.open()))
    if len(rows) != 1000:
        sys.exit(f"expected 1000 rows, found {len(rows)}")
    for row in rows:
        simple, variant_hash, holdout, on, variant = expected_row(row["distinct_id"])
        got = (
            float(row["simple_flag_hash"]),
            float(row["variant_hash"]),
            float(row["holdout_hash"]),
            row["simple_flag_45"] == "true",
            row["multivariate_variant"],
        )
        if got != (simple, variant_hash, holdout, on, variant):
            sys.exit(f"mismatch for {row['distinct_id']}: fixture {got}, sdk "
                     f"{(simple, variant_hash, holdout, on, variant)}")
    print(f"{len(rows)} passed, 0 failed")


if __name__ == "__main__":
    main()
