"""Insights end to end: events from posthog-python reach maintained funnels, trends and
retention, and the live stream delivers each update.

Uses the server fixture of test_sdk_python (a real `quill serve` per test).
"""

from __future__ import annotations

import json
import queue
import threading
from datetime import datetime, timedelta, timezone

import requests

from test_sdk_python import Quill, make_client, quill  # noqa: F401  (quill is a fixture)

NOW = datetime.now(timezone.utc)
TODAY = NOW.replace(hour=12, minute=0, second=0, microsecond=0)
if TODAY > NOW:
    TODAY -= timedelta(days=1)


def day(n: int, hours: float = 0) -> datetime:
    """`n` days before today's noon, plus `hours`."""
    return TODAY - timedelta(days=n) + timedelta(hours=hours)


FUNNEL = {
    "kind": "FunnelsQuery",
    "dateRange": {"date_from": "-7d"},
    "series": [
        {"kind": "EventsNode", "event": "$pageview"},
        {"kind": "EventsNode", "event": "signup"},
        {"kind": "EventsNode", "event": "purchase"},
    ],
    "funnelsFilter": {"funnelWindowInterval": 14, "funnelWindowIntervalUnit": "day"},
}
TREND = {
    "kind": "TrendsQuery",
    "dateRange": {"date_from": "-7d"},
    "interval": "day",
    "series": [{"kind": "EventsNode", "event": "$pageview", "math": "total"}],
}
RETENTION = {
    "kind": "RetentionQuery",
    "retentionFilter": {
        "period": "Day",
        "totalIntervals": 7,
        "targetEntity": {"id": "$pageview", "type": "events"},
        "returningEntity": {"id": "$pageview", "type": "events"},
    },
}


def send_history(q: Quill) -> None:
    errors: list = []
    client = make_client(q, errors)
    # u1 converts fully; u2 stops at signup; u3 only views. "anon" views before signing up
    # as u2, so the merge moves that view to u2's person.
    client.capture("$pageview", distinct_id="u1", timestamp=day(3))
    client.capture("signup", distinct_id="u1", timestamp=day(3, 1))
    client.capture("purchase", distinct_id="u1", timestamp=day(2))
    client.capture("$pageview", distinct_id="u1", timestamp=day(2, 2))
    client.capture("$pageview", distinct_id="anon-7", timestamp=day(2))
    client.capture("signup", distinct_id="u2", timestamp=day(2, 3))
    client.capture(
        "$identify",
        distinct_id="u2",
        properties={"$anon_distinct_id": "anon-7"},
        timestamp=day(2, 3),
    )
    client.capture("$pageview", distinct_id="u3", timestamp=day(0))
    client.flush()
    client.shutdown()
    assert not errors, errors


def register(q: Quill, name: str, query: dict) -> int:
    r = q.http.post(f"{q.url}/api/projects/1/insights", json={"name": name, "query": query})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def read(q: Quill, insight: int) -> dict:
    r = q.http.get(f"{q.url}/api/projects/1/insights/{insight}", params={"refresh": "blocking"})
    assert r.status_code == 200, r.text
    return r.json()


def test_events_from_the_sdk_reach_registered_insights(quill: Quill):
    funnel = register(quill, "signup funnel", FUNNEL)
    trend = register(quill, "pageviews", TREND)
    retention = register(quill, "retention", RETENTION)
    send_history(quill)

    steps = read(quill, funnel)["result"]
    assert [s["count"] for s in steps] == [3, 2, 1], steps
    assert [s["name"] for s in steps] == ["$pageview", "signup", "purchase"]

    trend_doc = read(quill, trend)
    series = trend_doc["result"][0]
    assert trend_doc["log_offset"] > 0
    by_day = dict(zip(series["days"], series["data"]))
    assert by_day[day(3).strftime("%Y-%m-%d")] == 1
    assert by_day[day(2).strftime("%Y-%m-%d")] == 2
    assert by_day[day(0).strftime("%Y-%m-%d")] == 1
    assert series["count"] == 4

    rows = read(quill, retention)["result"]
    assert len(rows) == 8 or len(rows) == 7, rows
    cohort = {r["date"][:10]: [v["count"] for v in r["values"]] for r in rows}
    # day(3): u1 viewed, and came back one day later.
    assert cohort[day(3).strftime("%Y-%m-%d")][:2] == [1, 1], cohort
    # day(2): u1 (again) and u2 (merged from anon-7).
    assert cohort[day(2).strftime("%Y-%m-%d")][0] == 2, cohort

    # The same queries answer ad hoc, in PostHog's envelope.
    r = quill.http.post(f"{quill.url}/api/projects/1/query", json={"query": FUNNEL})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [s["count"] for s in body["results"]] == [3, 2, 1]
    assert body["is_cached"] is False and body["timezone"] == "UTC"


def test_the_stream_delivers_each_update(quill: Quill):
    funnel = register(quill, "signup funnel", FUNNEL)
    send_history(quill)
    assert [s["count"] for s in read(quill, funnel)["result"]] == [3, 2, 1]

    updates: queue.Queue = queue.Queue()

    def listen():
        with requests.get(
            f"{quill.url}/api/projects/1/insights/{funnel}/stream",
            headers={"Authorization": quill.http.headers["Authorization"]},
            stream=True,
            timeout=30,
        ) as r:
            assert r.status_code == 200
            for line in r.iter_lines(decode_unicode=True):
                if line and line.startswith("data:"):
                    updates.put(json.loads(line[5:]))

    threading.Thread(target=listen, daemon=True).start()
    first = updates.get(timeout=20)
    assert [s["count"] for s in first["result"]] == [3, 2, 1]

    errors: list = []
    client = make_client(quill, errors)
    client.capture("purchase", distinct_id="u2", timestamp=day(1))
    client.flush()
    client.shutdown()
    assert not errors

    while True:
        update = updates.get(timeout=20)
        if update["log_offset"] > first["log_offset"]:
            break
    assert [s["count"] for s in update["result"]] == [3, 2, 2], update


def test_a_malformed_query_names_the_field(quill: Quill):
    bad = dict(TREND, series=[{"kind": "EventsNode", "event": "$pageview", "math": "bogus"}])
    r = quill.http.post(f"{quill.url}/api/projects/1/query", json={"query": bad})
    assert r.status_code == 400, r.text
    assert r.json()["attr"] == "query.series[0].math", r.json()
    r = quill.http.post(f"{quill.url}/api/projects/1/insights", json={"name": "x", "query": bad})
    assert r.status_code == 400
    assert r.json()["attr"] == "query.series[0].math"


def test_a_deleted_insight_leaves_the_list_and_stops_answering(quill: Quill):
    kept = register(quill, "kept", TREND)
    gone = register(quill, "gone", FUNNEL)
    listed = quill.http.get(f"{quill.url}/api/projects/1/insights").json()["results"]
    assert [(i["id"], i["name"]) for i in listed] == [(kept, "kept"), (gone, "gone")], listed

    r = quill.http.delete(f"{quill.url}/api/projects/1/insights/{gone}")
    assert r.status_code == 204, r.text
    assert quill.http.get(f"{quill.url}/api/projects/1/insights/{gone}").status_code == 404
    assert quill.http.delete(f"{quill.url}/api/projects/1/insights/{gone}").status_code == 404
    listed = quill.http.get(f"{quill.url}/api/projects/1/insights").json()["results"]
    assert [i["id"] for i in listed] == [kept], listed
    assert read(quill, kept)["name"] == "kept"
