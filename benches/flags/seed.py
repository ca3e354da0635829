"""Seeds a running Quill for the /flags benchmark: 50 flags over many operators, and persons.

    python benches/flags/seed.py BASE_URL TOKEN PERSONAL_KEY [PERSONS]

Standard library only, so it runs without the project's venv.
"""
import json
import random
import sys
import time
import urllib.request

BASE, TOKEN, KEY = sys.argv[1], sys.argv[2], sys.argv[3]
PERSONS = int(sys.argv[4]) if len(sys.argv) > 4 else 10_000
rng = random.Random(7)


def post(path, body, key=None):
    req = urllib.request.Request(BASE + path, data=json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    with urllib.request.urlopen(req) as resp:
        return json.loads(resp.read() or b"null")


def condition(i):
    """One property filter; the operator cycles so every request exercises each kind."""
    kinds = [
        {"key": "plan", "value": ["pro", "enterprise"], "operator": "exact"},
        {"key": "email", "value": "example.com", "operator": "icontains"},
        {"key": "age", "value": 30, "operator": "gte"},
        {"key": "app_version", "value": "1.4.0", "operator": "semver_gte"},
        {"key": "country", "value": ["FR"], "operator": "is_not"},
        {"key": "email", "value": r"^user-\d*7@", "operator": "regex"},
        {"key": "signup_date", "value": "-90d", "operator": "is_date_after"},
        {"key": "plan", "operator": "is_set"},
    ]
    return dict(kinds[i % len(kinds)], type="person")


def flag(i):
    groups = []
    for c in range(1 + i % 3):
        groups.append({
            "properties": [condition(i + c)],
            "rollout_percentage": [10, 50, 100][(i + c) % 3],
        })
    filters = {"groups": groups}
    if i % 3 == 0:
        filters["multivariate"] = {"variants": [
            {"key": "control", "rollout_percentage": 50},
            {"key": "test", "rollout_percentage": 50},
        ]}
        filters["payloads"] = {"test": json.dumps({"color": "blue", "n": i})}
    else:
        filters["payloads"] = {"true": json.dumps({"flag": i})}
    return {"key": f"bench-flag-{i}", "name": f"Bench flag {i}", "active": True, "filters": filters}


for i in range(50):
    post("/api/projects/1/feature_flags", flag(i), KEY)

now = time.time()
for start in range(0, PERSONS, 500):
    batch = []
    for n in range(start, min(start + 500, PERSONS)):
        signup = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - rng.randint(0, 200) * 86400))
        batch.append({
            "event": "$set",
            "distinct_id": f"user-{n}",
            "properties": {"$set": {
                "email": f"user-{n}@{rng.choice(['example.com', 'acme.io', 'mail.test'])}",
                "plan": rng.choice(["free", "pro", "enterprise"]),
                "age": rng.randint(18, 70),
                "app_version": f"1.{rng.randint(0, 9)}.{rng.randint(0, 9)}",
                "country": rng.choice(["FR", "US", "DE", "JP"]),
                "signup_date": signup,
            }},
        })
    post("/batch/", {"api_key": TOKEN, "batch": batch})

# Persons come from the log through the materializer: wait until it has caught up.
for _ in range(600):
    with urllib.request.urlopen(BASE + "/_status") as resp:
        if json.loads(resp.read())["materializer_lag_bytes"] == 0:
            break
    time.sleep(0.1)
print(f"seeded 50 flags and {PERSONS} persons")
