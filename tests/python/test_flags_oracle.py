"""posthog-python as the oracle for Quill's feature flags, end to end.

A random set of flags (every operator, multivariate splits, condition variants, holdouts, early
exit, feature enrollment, group flags, flag dependencies) is created through Quill's CRUD API.
posthog-python, with a personal API key pointed at Quill, fetches them through the
local-evaluation endpoint. For thousands of (distinct_id, properties) cases the SDK's local
answer must equal Quill's `/flags?v=2` answer, variants and payloads included.

Cases the SDK cannot decide locally are skipped, and so are cases where it would answer from
a later condition after skipping an inconclusive one (the server, which knows the person,
decides at the earlier condition; see flags/README.md).
"""

from __future__ import annotations

import json
import random
import time

import requests
from posthog import Posthog
from posthog.feature_flags import InconclusiveMatchError, RequiresServerEvaluation

from test_sdk_python import PERSONAL_KEY, TOKEN, quill  # noqa: F401  (fixture)

rng = random.Random(4_2024)
N_FLAGS = 120
N_CASES = 2500
OTHERS_PER_CASE = 6

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
           "^$", "E", "(?i)pro", r"^\w+_\d$", "x+y*"]
SUBSTRINGS = ["pro", "PR", "", "e", "example", "ß", "é", "1", "null", "true"]
DATE_FILTERS = ["-7d", "-1m", "-2y", "-12h", "-30d", "2024-01-01", "2024-06-15T12:00:00Z",
                "2023-12-31 23:00:00", "2025-02-28T00:00:00+02:00"]
OPERATORS = ["exact", "is_not", "is_set", "is_not_set", "icontains", "not_icontains",
             "regex", "not_regex", "gt", "gte", "lt", "lte", "is_date_before",
             "is_date_after", "semver_eq", "semver_neq", "semver_gt", "semver_gte",
             "semver_lt", "semver_lte", "semver_tilde", "semver_caret", "semver_wildcard"]
KEYS = ["plan", "email", "age", "version", "signed_up", "score"]


def person_date():
    import datetime

    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    d = now - datetime.timedelta(days=rng.choice([0.5, 2, 5, 10, 20, 40, 60, 200, 800]) + 0.25)
    return rng.choice([d.isoformat(), d.strftime("%Y-%m-%d"), d.strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "2024-01-01", "2023-12-31T23:30:00Z", "not a date"])


def filter_value(op):
    if op in ("exact", "is_not"):
        if rng.random() < 0.25:
            return rng.sample(SCALARS[:-1], rng.randint(1, 3))
        return rng.choice(SCALARS[:-1])
    if op in ("is_set", "is_not_set"):
        return op
    if "contains" in op:
        return rng.choice(SUBSTRINGS)
    if "regex" in op:
        return rng.choice(REGEXES)
    if op in ("gt", "gte", "lt", "lte"):
        return rng.choice([0, 5, 10, 42, 4.5, "10", "-1", "1e2"])
    if op.startswith("is_date"):
        return rng.choice(DATE_FILTERS)
    if op == "semver_wildcard":
        return rng.choice([v for v in SEMVER_FILTERS if "*" in v])
    return rng.choice([v for v in SEMVER_FILTERS if "*" not in v])


def person_value(op):
    if op in ("gt", "gte", "lt", "lte"):
        return rng.choice(NUMBERS)
    if op.startswith("is_date"):
        return person_date()
    if op.startswith("semver"):
        return rng.choice(VERSIONS)
    return rng.choice(SCALARS)


def condition(variant_keys, pool, group):
    props = []
    for _ in range(rng.choice([0, 1, 1, 2, 3])):
        if not group and pool and rng.random() < 0.1:
            dep = rng.choice(pool)
            props.append({"key": dep, "type": "flag", "operator": "flag_evaluates_to",
                          "value": rng.choice([True, False, "control", "test"])})
            continue
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
    filters = {"aggregation_group_type_index": 0 if group else None}
    variant_keys = []
    if rng.random() < 0.4:
        variant_keys = ["control", "test", "test-2", "test-3"][: rng.randint(2, 4)]
        filters["multivariate"] = {"variants": [
            {"key": k, "rollout_percentage": p}
            for k, p in zip(variant_keys, split(len(variant_keys)))]}
        filters["payloads"] = {k: json.dumps({"v": k, "i": i}) for k in variant_keys[:2]}
    else:
        filters["payloads"] = {"true": json.dumps({"on": i})}
    filters["groups"] = [condition(variant_keys, pool, group) for _ in range(rng.randint(1, 3))]
    if rng.random() < 0.15:
        filters["holdout"] = {"id": i, "exclusion_percentage": rng.choice([0, 10, 50, 100])}
    if rng.random() < 0.2:
        filters["early_exit"] = True
    if not group and rng.random() < 0.08:
        filters["feature_enrollment"] = True
        filters["super_groups"] = [{"properties": [{
            "key": f"$feature_enrollment/{key}", "type": "person", "operator": "exact",
            "value": ["true"]}], "rollout_percentage": 100}]
    return {"key": key, "name": f"Flag {i}", "active": rng.random() > 0.05,
            "ensure_experience_continuity": False, "filters": filters}


def dependencies(flag):
    return [p["key"] for c in flag["filters"]["groups"] for p in c.get("properties") or []
            if p.get("type") == "flag"]


def conclusive(client, snapshot, flag, did, props, groups, gprops, seen=None):
    """Whether the SDK decides every condition of `flag` (and of its dependencies) alone."""
    seen = seen or set()
    if flag["key"] in seen:
        return True
    seen.add(flag["key"])
    for cond in flag["filters"]["groups"]:
        single = dict(flag, filters=dict(flag["filters"], groups=[cond], early_exit=False,
                                          holdout=None))
        try:
            client._compute_flag_locally(single, did, groups=groups, person_properties=props,
                                         group_properties=gprops, _definition_snapshot=snapshot)
        except (InconclusiveMatchError, RequiresServerEvaluation):
            return False
    for dep in dependencies(flag):
        target = snapshot["flags_by_key"].get(dep)
        if target and not conclusive(client, snapshot, target, did, props, groups, gprops, seen):
            return False
    return True


def parsed(payload):
    if isinstance(payload, str):
        try:
            return json.loads(payload)
        except ValueError:
            return payload
    return payload


def test_sdk_local_evaluation_equals_quill_flags_v2(quill):  # noqa: F811
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {PERSONAL_KEY}"

    # A group type for the group flags: company → index 0.
    seed = Posthog(TOKEN, host=quill.url, sync_mode=True)
    seed.group_identify("company", "org-seed", {"plan": "pro"})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = api.get(f"{quill.url}/flags/definitions", params={"token": TOKEN})
        if r.json()["group_type_mapping"] == {"0": "company"}:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"group type never appeared: {r.text}")

    plain: list[str] = []
    rejected = []
    for i in range(1, N_FLAGS + 1):
        for _ in range(20):
            flag = make_flag(i, plain)
            r = api.post(f"{quill.url}/api/projects/1/feature_flags", json=flag)
            if r.status_code == 201:
                break
            # Random definitions Quill refuses must be refused naming the field.
            assert r.status_code == 400 and r.json()["attr"], f"{flag}: {r.text}"
            rejected.append(r.json()["detail"])
        else:
            raise AssertionError(f"flag-{i} never accepted: {rejected[-3:]}")
        if flag["filters"]["aggregation_group_type_index"] is None and not dependencies(flag):
            plain.append(flag["key"])
    listed = api.get(f"{quill.url}/api/projects/1/feature_flags").json()["results"]
    assert len(listed) == N_FLAGS

    client = Posthog(TOKEN, host=quill.url, personal_api_key=PERSONAL_KEY,
                     send=False, feature_flags_request_timeout_seconds=10)
    try:
        client.load_feature_flags()
        assert len(client.feature_flags) == N_FLAGS
        snapshot = client._local_evaluation_snapshot()
        flags = {f["key"]: f for f in client.feature_flags}

        compared = skipped = 0
        by_kind = {"variant": 0, "true": 0, "false": 0, "payload": 0, "group": 0}
        mismatches = []
        for n in range(N_CASES):
            target = flags[f"flag-{rng.randint(1, N_FLAGS)}"]
            is_group = target["filters"].get("aggregation_group_type_index") is not None
            keys = {p["key"] for c in target["filters"]["groups"]
                    for p in c.get("properties") or [] if p.get("type") in ("person", "group")}
            keys |= {"plan", "email", "age"}
            props = {}
            for k in keys:
                if rng.random() < 0.9:
                    op = next((p["operator"] for c in target["filters"]["groups"]
                               for p in c.get("properties") or [] if p.get("key") == k), "exact")
                    props[k] = person_value(op)
            if target["filters"].get("feature_enrollment") and rng.random() < 0.7:
                props[f"$feature_enrollment/{target['key']}"] = rng.choice([True, False, "true"])
            did = rng.choice([f"user-{rng.randint(0, 10**6)}", f"distinct_id_{n}",
                              str(rng.randint(0, 99999))])
            groups, gprops, pprops = {}, {}, props
            if is_group:
                pprops = {}
                if rng.random() < 0.85:
                    groups = {"company": f"org-{rng.randint(0, 9999)}"}
                    gprops = {"company": props}

            r = requests.post(f"{quill.url}/flags?v=2", json={
                "token": TOKEN, "distinct_id": did, "person_properties": pprops,
                "groups": groups, "group_properties": gprops}, timeout=10)
            assert r.status_code == 200, r.text
            server = r.json()["flags"]
            assert len(server) == N_FLAGS

            keys_to_check = [target["key"]] + rng.sample(sorted(flags), OTHERS_PER_CASE)
            for key in keys_to_check:
                result = client.get_feature_flag_result(
                    key, did, groups=groups, person_properties=pprops, group_properties=gprops,
                    only_evaluate_locally=True, send_feature_flag_events=False)
                if result is None or not conclusive(
                        client, snapshot, flags[key], did,
                        client._person_properties_for_local_evaluation(did, pprops),
                        groups, {k: {"$group_key": groups[k], **v} for k, v in gprops.items()}):
                    skipped += 1
                    continue
                details = server[key]
                quill_value = (details["variant"] or True) if details["enabled"] else False
                sdk_value = result.get_value()
                sdk_payload = parsed(result.payload)
                quill_payload = parsed(details["metadata"]["payload"])
                compared += 1
                if sdk_value != quill_value or sdk_payload != quill_payload:
                    mismatches.append((key, did, pprops, groups, sdk_value, quill_value,
                                       sdk_payload, quill_payload, details["reason"]))
                by_kind["variant" if isinstance(sdk_value, str) else str(sdk_value).lower()] += 1
                by_kind["payload"] += sdk_payload is not None
                by_kind["group"] += flags[key]["filters"].get(
                    "aggregation_group_type_index") is not None
        print(f"{len(rejected)} random definitions refused, e.g. {rejected[:3]}")
        print(f"compared {compared}, skipped {skipped} inconclusive, {by_kind}")
        assert not mismatches, f"{len(mismatches)} of {compared} differ, first: {mismatches[:5]}"
        assert compared >= 5000, (compared, skipped)
        assert min(by_kind.values()) >= 50, by_kind
    finally:
        client.shutdown()


def test_remote_flags_and_feature_flag_called_events(quill):  # noqa: F811
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {PERSONAL_KEY}"
    r = api.post(f"{quill.url}/api/projects/1/feature_flags", json={
        "key": "pro-only", "name": "Pro", "active": True, "filters": {
            "groups": [{"properties": [{"key": "plan", "value": "pro", "operator": "exact",
                                        "type": "person"}], "rollout_percentage": 100}],
            "payloads": {"true": json.dumps({"limit": 10})}}})
    assert r.status_code == 201, r.text

    client = Posthog(TOKEN, host=quill.url, sync_mode=True)
    # The person's stored properties decide remotely: no person_properties sent.
    client.set(distinct_id="remote-user", properties={"plan": "pro"})
    deadline = time.monotonic() + 10
    while quill.person("remote-user") is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.get_feature_flag("pro-only", "remote-user") is True
    assert client.get_feature_flag("pro-only", "someone-else") is False
    assert client.get_feature_flag_payload("pro-only", "remote-user") == {"limit": 10}
    assert client.get_all_flags("remote-user") == {"pro-only": True}
    client.shutdown()

    deadline = time.monotonic() + 10
    called = []
    while time.monotonic() < deadline and len(called) < 2:
        called = [e for e in quill.events(event="$feature_flag_called")]
        time.sleep(0.1)
    assert called, "no $feature_flag_called event was captured"
    props = {e["distinct_id"]: e["properties"] for e in called}
    assert props["remote-user"]["$feature_flag"] == "pro-only"
    assert props["remote-user"]["$feature_flag_response"] is True
