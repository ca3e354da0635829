#!/usr/bin/env python3
"""Generate the SDK-oracle fixture: random flags and persons, answered by posthog-python.

Builds a few hundred random person flags over every operator the SDK evaluates locally
(multivariate splits, condition variants, holdouts, rollouts, early exit, feature enrollment,
cohorts, flag dependencies) and thousands of (distinct_id, properties) cases, then records
posthog-python's local answer for each. Cases the SDK cannot decide locally are dropped.
`tests/sdk_oracle.rs` replays the cases through quill-flags, which must agree on every one.

    .venv/bin/python flags/tests/generate_oracle_fixture.py   # rewrites the fixture

Not run by cargo; the fixture it writes is committed.
"""

import datetime
import json
import pathlib
import random

from posthog.feature_flags import (
    InconclusiveMatchError,
    RequiresServerEvaluation,
    match_feature_flag_properties,
)

OUT = pathlib.Path(__file__).parent / "fixtures" / "sdk_oracle.json"
rng = random.Random(20240615)

STRINGS = ["pro", "Pro", "PRO", "free", "enterprise", "true", "false", "True", "",
           "a@example.com", "B@Example.COM", "straße", "null", "42", "4.5", "1e3", "abc123",
           "user_7", "x y z", "ÉCOLE"]
SCALARS = STRINGS + [True, False, 0, 1, 42, -3, 4.5, 1.0, 1000, None]
NUMBERS = [0, 1, 5, 10, 42, -3, 4.5, 1e3, 99.9, "10", "4.5", "-2", "1e2", ".5", "abc", True,
           None, " 7", "7 "]
VERSIONS = ["1.0.0", "1.2.3", "v1.2.3", "1.2", "2", "0.2.5", "0.0.3", "1.2.3-beta", "10.0.1",
            "1.10.0", "01.2.3", "1.2.3.4", "garbage", "2.0.0+build", " 1.3.0 ", "0.3.0"]
SEMVER_FILTERS = ["1.2.3", "1.2", "2.0.0", "0.2.3", "0.0.3", "1", "v1.10.0", "1.*", "1.2.*",
                  "0.*"]
REGEXES = ["^pro", "pro$", r"\d+", "^[a-z]+$", "(free|pro)", "", "a.c", r"@example\.com$",
           "^$", "[", "E", "(?i)pro", r"^\w+_\d$", "x+y*"]
SUBSTRINGS = ["pro", "PR", "", "e", "example", "ß", "é", "1", "null", "true"]
DATE_FILTERS = ["-7d", "-1m", "-2y", "-12h", "3w", "-30d", "2024-01-01", "2024-06-15T12:00:00Z",
                "2023-12-31 23:00:00", "2025-02-28T00:00:00+02:00"]
OPERATORS = ["exact", "is_not", "is_set", "is_not_set", "icontains", "not_icontains",
             "starts_with", "not_starts_with", "ends_with", "not_ends_with", "regex",
             "not_regex", "gt", "gte", "lt", "lte", "is_date_before", "is_date_after",
             "semver_eq", "semver_neq", "semver_gt", "semver_gte", "semver_lt", "semver_lte",
             "semver_tilde", "semver_caret", "semver_wildcard"]
KEYS = ["plan", "email", "age", "version", "signed_up", "flag", "score"]

NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def person_date():
    # Keep a margin of days from every relative filter so a slow run cannot flip a result.
    day_offsets = [0.5, 2, 5, 10, 20, 25, 40, 60, 200, 400, 800, 1000]
    d = NOW - datetime.timedelta(days=rng.choice(day_offsets) + 0.25)
    forms = [d.isoformat(), d.strftime("%Y-%m-%d"), d.strftime("%Y-%m-%dT%H:%M:%SZ"),
             d.strftime("%Y-%m-%d %H:%M:%S"), "2024-01-01", "2023-12-31T23:30:00Z",
             "2025-02-27T23:00:00Z", "not a date", 1700000000]
    return rng.choice(forms)


def filter_value(op):
    if op in ("exact", "is_not"):
        r = rng.random()
        if r < 0.25:
            return rng.sample(SCALARS[:-1], rng.randint(1, 3))
        if r < 0.28:
            return []
        return rng.choice(SCALARS[:-1])
    if op in ("is_set", "is_not_set"):
        return op
    if "contains" in op or "starts" in op or "ends" in op:
        return rng.choice(SUBSTRINGS)
    if "regex" in op:
        return rng.choice(REGEXES)
    if op in ("gt", "gte", "lt", "lte"):
        return rng.choice([0, 5, 10, 42, 4.5, "10", "-1", "1e2"])
    if op.startswith("is_date"):
        return rng.choice(DATE_FILTERS)
    return rng.choice(SEMVER_FILTERS)


def person_value(op):
    if op in ("gt", "gte", "lt", "lte"):
        return rng.choice(NUMBERS)
    if op.startswith("is_date"):
        return person_date()
    if op.startswith("semver"):
        return rng.choice(VERSIONS + [1.2, 2])
    if rng.random() < 0.1:
        return rng.choice([[1, "a"], {"k": "v"}])
    return rng.choice(SCALARS)


def condition(variant_keys, pool, group):
    props = []
    for _ in range(rng.choice([0, 1, 1, 2, 3])):
        r = rng.random()
        if group and r < 0.14:
            r = 1.0
        if r < 0.08:
            props.append({"key": "id", "type": "cohort", "value": rng.choice([1, 2]),
                          "operator": rng.choice(["in", "not_in"])})
        elif r < 0.14 and pool:
            dep = rng.choice(pool)
            props.append({"key": dep, "type": "flag", "operator": "flag_evaluates_to",
                          "value": rng.choice([True, False, "control", "test"]),
                          "dependency_chain": [dep]})
        else:
            op = rng.choice(OPERATORS)
            prop = {"key": rng.choice(KEYS), "type": "group" if group else "person",
                    "operator": op, "value": filter_value(op)}
            if group:
                prop["group_type_index"] = 0
            props.append(prop)
    c = {"properties": props,
         "rollout_percentage": rng.choice([None, 0, 10, 33, 50, 75.5, 99, 100])}
    if variant_keys and rng.random() < 0.2:
        c["variant"] = rng.choice(variant_keys)
    return c


def split(n):
    cuts = sorted(rng.sample(range(1, 100), n - 1))
    return [b - a for a, b in zip([0] + cuts, cuts + [100])]


def make_flag(i, pool):
    key = f"flag-{i}"
    group = rng.random() < 0.2
    filters = {"groups": [], "payloads": {},
               "aggregation_group_type_index": 0 if group else None}
    variant_keys = []
    if rng.random() < 0.4:
        variant_keys = ["control", "test", "test-2", "test-3"][: rng.randint(2, 4)]
        filters["multivariate"] = {"variants": [
            {"key": k, "rollout_percentage": p}
            for k, p in zip(variant_keys, split(len(variant_keys)))]}
        filters["payloads"] = {k: json.dumps({"v": k}) for k in variant_keys[:2]}
    else:
        filters["payloads"] = {"true": json.dumps({"on": i})}
    filters["groups"] = [condition(variant_keys, pool, group)
                         for _ in range(rng.randint(1, 3))]
    if rng.random() < 0.15:
        filters["holdout"] = {"id": i, "exclusion_percentage": rng.choice([0, 10, 50, 100])}
    if rng.random() < 0.2:
        filters["early_exit"] = True
    if not group and rng.random() < 0.08:
        filters["feature_enrollment"] = True
        filters["super_groups"] = [{"properties": [{
            "key": f"$feature_enrollment/{key}", "type": "person", "operator": "exact",
            "value": ["true"]}], "rollout_percentage": 100}]
    return {"id": i, "key": key, "name": f"Flag {i}", "active": rng.random() > 0.05,
            "ensure_experience_continuity": False, "version": 1, "filters": filters}


GROUP_TYPES = {"0": "company"}

COHORTS = {
    "1": {"type": "OR", "values": [{"type": "AND", "values": [
        {"key": "plan", "type": "person", "value": ["pro", "enterprise"], "operator": "exact"},
        {"key": "email", "type": "person", "value": "example", "operator": "icontains",
         "negation": True}]}]},
    "2": {"type": "AND", "values": [
        {"key": "age", "type": "person", "value": 18, "operator": "gte"}]},
}


def sdk_value(flag, did, props, flags_by_key, groups):
    if not flag.get("active"):
        return False
    bucketing = did
    if flag["filters"].get("aggregation_group_type_index") is not None:
        # As the client does for group flags: no group, no flag; else bucket by its key.
        if "company" not in groups:
            return False
        bucketing = groups["company"]
    try:
        return match_feature_flag_properties(
            flag, bucketing, props, cohort_properties=COHORTS, flags_by_key=flags_by_key,
            evaluation_cache={}, bucketing_value=bucketing,
            group_type_mapping=GROUP_TYPES, groups=groups)
    except (InconclusiveMatchError, RequiresServerEvaluation):
        return None


def fully_conclusive(flag, did, props, flags_by_key, groups):
    """Whether every condition is conclusive on its own.

    The SDK skips a condition it cannot decide (a property missing locally) and goes on to
    later ones, so it can answer where the server, which knows the person fully, would stop
    at that condition. Such cases compare two different questions, so they are dropped.
    """
    for cond in flag["filters"]["groups"]:
        single = dict(flag, filters=dict(flag["filters"], groups=[cond], early_exit=False,
                                          holdout=None))
        if sdk_value(single, did, props, flags_by_key, groups) is None:
            return False
    return True


def main():
    flags = []
    plain = []
    for i in range(1, 301):
        f = make_flag(i, plain)
        flags.append(f)
        if f["filters"]["aggregation_group_type_index"] is None and not any(
                p.get("type") == "flag" for c in f["filters"]["groups"]
                for p in c["properties"]):
            plain.append(f["key"])
    flags_by_key = {f["key"]: f for f in flags}
    cases = []
    dropped = 0
    for f in flags:
        is_group = f["filters"]["aggregation_group_type_index"] is not None
        keys = {p["key"] for c in f["filters"]["groups"] for p in c["properties"]
                if p.get("type") in ("person", "group")}
        keys |= {"plan", "email", "age"}
        for j in range(12):
            did = rng.choice([f"user-{rng.randint(0, 10**6)}", f"distinct_id_{j}",
                              str(rng.randint(0, 99999))])
            props = {}
            for k in keys:
                if rng.random() < 0.9:
                    op = next((p["operator"] for c in f["filters"]["groups"]
                               for p in c["properties"] if p.get("key") == k), "exact")
                    props[k] = person_value(op)
            if "feature_enrollment" in f["filters"] and rng.random() < 0.7:
                props[f"$feature_enrollment/{f['key']}"] = rng.choice([True, False, "true"])
            case = {"flag": f["key"], "distinct_id": did}
            groups = {}
            if is_group:
                if rng.random() < 0.85:
                    groups = {"company": rng.choice([f"org-{rng.randint(0, 9999)}",
                                                     f"distinct_id_{j}"])}
                    case["groups"] = groups
                    case["group_properties"] = {"company": props}
                case["properties"] = {}
            else:
                case["properties"] = props
            value = sdk_value(f, did, props, flags_by_key, groups)
            if value is None or not fully_conclusive(f, did, props, flags_by_key, groups):
                dropped += 1
                continue
            case["expected"] = value
            cases.append(case)
    OUT.write_text(json.dumps({
        "generated_by": "flags/tests/generate_oracle_fixture.py with posthog-python",
        "now": NOW.isoformat(),
        "group_type_mapping": GROUP_TYPES,
        "cohorts": COHORTS,
        "flags": flags,
        "cases": cases,
    }, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"{len(cases)} cases from {len(flags)} flags ({dropped} inconclusive dropped)")


if __name__ == "__main__":
    main()
