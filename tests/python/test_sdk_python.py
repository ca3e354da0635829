"""End-to-end tests: the real `quill` binary driven by the real posthog-python SDK.

Each test starts its own server on 127.0.0.1 (a port the OS picks, read back from the
server's "Listening on" line) with a fresh data directory and a seeded project token and
personal API key, and stops it with SIGTERM, asserting a clean exit 0.

The binary is `$QUILL_BIN`, by default /work/main/target/debug/quill (run
`scripts/sdk-tests.sh`, which builds it first).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import time
import uuid as uuidlib
from pathlib import Path

import posthog
import posthog.request
import pytest
import requests
from posthog import Posthog

REPO = Path(__file__).resolve().parents[2]
QUILL_BIN = os.environ.get("QUILL_BIN", str(REPO / "target" / "debug" / "quill"))
TOKEN = "phc_sdk_python_test_token_0123456789"
PERSONAL_KEY = "phx_sdk_python_test_key_0123456789"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0


class Quill:
    """A running `quill serve` and a small client for its read API."""

    def __init__(self, data_dir: Path, log_dir: Path):
        self.data_dir = data_dir
        self.stdout_path = log_dir / "quill.stdout"
        self.stderr_path = log_dir / "quill.stderr"
        self.proc: subprocess.Popen | None = None
        self.stdout = self.stderr = None
        self.url = ""
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {PERSONAL_KEY}"

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        env = dict(os.environ)
        env["QUILL_PROJECT_TOKEN"] = TOKEN
        env["QUILL_PERSONAL_API_KEY"] = PERSONAL_KEY
        env.setdefault("RUST_LOG", "info")
        self.stdout = open(self.stdout_path, "ab")
        self.stderr = open(self.stderr_path, "ab")
        start_offset = self.stdout_path.stat().st_size
        self.proc = None
        self.proc = subprocess.Popen(
            [QUILL_BIN, "serve", "--data-dir", str(self.data_dir), "--bind", "127.0.0.1:0"],
            stdout=self.stdout,
            stderr=self.stderr,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"quill exited early with {self.proc.returncode}:\n{self.logs()}"
                )
            text = self.stdout_path.read_bytes()[start_offset:].decode("utf-8", "replace")
            m = re.search(r"Listening on (http://127\.0\.0\.1:\d+)", text)
            if m:
                self.url = m.group(1)
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"quill did not start in {START_TIMEOUT}s:\n{self.logs()}")
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/_readiness", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise AssertionError(f"quill never became ready:\n{self.logs()}")

    def stop(self) -> int | None:
        """SIGTERM, wait; kills (and fails) if the server does not exit in time."""
        try:
            if self.proc is None:
                return None
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
                    raise AssertionError(
                        f"quill ignored SIGTERM for {STOP_TIMEOUT}s:\n{self.logs()}"
                    )
            return self.proc.returncode
        finally:
            for f in (self.stdout, self.stderr):
                if f is not None:
                    f.close()

    def logs(self) -> str:
        out = []
        for p in (self.stdout_path, self.stderr_path):
            if p.exists():
                out.append(f"--- {p.name} ---\n" + p.read_text("utf-8", "replace")[-8000:])
        return "\n".join(out)

    # -- read API -------------------------------------------------------------------------
    def api(self, path: str, **params) -> dict:
        r = self.http.get(f"{self.url}/api/projects/1{path}", params=params, timeout=30)
        assert r.status_code == 200, f"GET {path} {params}: {r.status_code} {r.text}"
        return r.json()

    def events(self, **params) -> list[dict]:
        """Every event matching params, following `next` (newest first)."""
        page = self.api("/events", **params)
        results = list(page["results"])
        pages = 1
        while page.get("next"):
            pages += 1
            assert pages < 100, "runaway pagination"
            r = self.http.get(page["next"], timeout=30)
            assert r.status_code == 200, r.text
            page = r.json()
            results.extend(page["results"])
        return results

    def person(self, distinct_id: str) -> dict | None:
        found = self.api("/persons", distinct_id=distinct_id)["results"]
        assert len(found) <= 1, found
        return found[0] if found else None

    def persons(self) -> list[dict]:
        return self.api("/persons", limit=10000)["results"]


@pytest.fixture
def quill(tmp_path):
    server = Quill(tmp_path / "data", tmp_path)
    stopped = False
    try:
        server.start()
        yield server
        stopped = True
        code = server.stop()
        assert code == 0, f"quill exited {code} on SIGTERM:\n{server.logs()}"
    finally:
        if not stopped:
            server.stop()
        # shown by pytest only when the test failed
        print(server.logs())


class Wire:
    """Records what posthog-python's HTTP session sent and what came back."""

    def __init__(self):
        self.calls: list[tuple[str, str, str | None, int, str]] = []
        self.session = posthog.request._get_session()

    def hook(self, response, *args, **kwargs):
        req = response.request
        self.calls.append(
            (
                req.method,
                req.url,
                req.headers.get("Content-Encoding"),
                response.status_code,
                response.text[:500],
            )
        )

    def __enter__(self):
        self.session.hooks["response"].append(self.hook)
        return self

    def __exit__(self, *exc):
        self.session.hooks["response"].remove(self.hook)

    def assert_all_ok(self, base_url: str):
        assert self.calls, "the SDK sent nothing"
        for method, url, _, status, text in self.calls:
            assert url.startswith(base_url), url
            assert status == 200, f"{method} {url} -> {status} {text}"


def make_client(quill: Quill, errors: list, **kwargs) -> Posthog:
    return Posthog(
        TOKEN,
        host=quill.url,
        on_error=lambda e, batch: errors.append((e, batch)),
        max_retries=0,
        timeout=15,
        **kwargs,
    )


def by_event(events: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for e in events:
        out.setdefault(e["event"], []).append(e)
    return out


# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("use_gzip", [False, True], ids=["plain", "gzip"])
def test_capture_batches_round_trip(quill, use_gzip):
    errors: list = []
    with Wire() as wire:
        client = make_client(quill, errors, gzip=use_gzip, flush_at=50, flush_interval=30)
        uuids = []
        for i in range(5):
            uuids.append(
                client.capture(
                    "purchase",
                    distinct_id="buyer-1",
                    properties={
                        "i": i,
                        "price": 9.99,
                        "currency": "EUR",
                        "tags": ["a", "b"],
                        "nested": {"deep": {"ok": True, "none": None}},
                        "unicode": "héllo ✓ 漢字",
                    },
                )
            )
        client.capture("$pageview", distinct_id="buyer-1", properties={"$current_url": "https://x.test/p"})
        client.flush()
        client.shutdown()
    assert not errors, errors
    wire.assert_all_ok(quill.url)
    batch_calls = [c for c in wire.calls if "/batch" in c[1]]
    assert batch_calls, wire.calls
    for _, _, encoding, _, _ in batch_calls:
        assert encoding == ("gzip" if use_gzip else None)

    events = quill.events(distinct_id="buyer-1")
    names = by_event(events)
    assert sorted(names) == ["$pageview", "purchase"]
    purchases = names["purchase"]
    assert len(purchases) == 5
    assert sorted(e["uuid"] for e in purchases) == sorted(uuids)
    for e in purchases:
        p = e["properties"]
        assert e["distinct_id"] == "buyer-1"
        assert p["price"] == 9.99
        assert p["currency"] == "EUR"
        assert p["tags"] == ["a", "b"]
        assert p["nested"] == {"deep": {"ok": True, "none": None}}
        assert p["unicode"] == "héllo ✓ 漢字"
        assert p["$lib"] == "posthog-python"
        assert p["$lib_version"] == posthog.VERSION
    assert sorted(e["properties"]["i"] for e in purchases) == [0, 1, 2, 3, 4]
    assert names["$pageview"][0]["properties"]["$current_url"] == "https://x.test/p"

    # newest first
    stamps = [e["timestamp"] for e in events]
    assert stamps == sorted(stamps, reverse=True)

    person = quill.person("buyer-1")
    assert person is not None
    assert person["distinct_ids"] == ["buyer-1"]
    assert person["is_identified"] is False
    assert all(e["person_id"] == person["uuid"] for e in events)
    assert {e["uuid"] for e in quill.events(person_id=person["uuid"])} == {e["uuid"] for e in events}
    assert len(quill.events(event="purchase")) == 5


def test_identify_merges_anonymous_person(quill):
    errors: list = []
    with Wire() as wire:
        client = make_client(quill, errors, sync_mode=True)
        client.capture("$pageview", distinct_id="anon-1", properties={"$set_once": {"first_url": "/landing"}})
        client.capture("clicked", distinct_id="anon-1", properties={"button": "signup"})
        client.capture("server_side", distinct_id="user-1")
        client.capture(
            "$identify",
            distinct_id="user-1",
            properties={
                "$anon_distinct_id": "anon-1",
                "$set": {"email": "u1@example.com", "name": "User One"},
                "$set_once": {"signup_source": "ads"},
            },
        )
        client.capture("after_login", distinct_id="user-1")
        client.shutdown()
    assert not errors, errors
    wire.assert_all_ok(quill.url)

    person = quill.person("user-1")
    assert person is not None
    assert sorted(person["distinct_ids"]) == ["anon-1", "user-1"]
    assert person["is_identified"] is True
    assert person["properties"]["email"] == "u1@example.com"
    assert person["properties"]["name"] == "User One"
    assert person["properties"]["signup_source"] == "ads"
    assert person["properties"]["first_url"] == "/landing"
    assert quill.person("anon-1")["uuid"] == person["uuid"]
    assert len(quill.persons()) == 1

    events = quill.events(person_id=person["uuid"])
    assert sorted(e["event"] for e in events) == sorted(
        ["$pageview", "clicked", "server_side", "$identify", "after_login"]
    )
    assert all(e["person_id"] == person["uuid"] for e in events)
    identify = by_event(events)["$identify"][0]
    assert identify["distinct_id"] == "user-1"
    assert identify["properties"]["$anon_distinct_id"] == "anon-1"
    assert identify["properties"]["$set"] == {"email": "u1@example.com", "name": "User One"}
    # the anonymous events keep their own distinct id
    assert {e["distinct_id"] for e in by_event(events)["clicked"]} == {"anon-1"}


def test_identify_never_merges_two_identified_persons_but_merge_dangerously_does(quill):
    errors: list = []
    with Wire() as wire:
        client = make_client(quill, errors, sync_mode=True)
        for n in ("a", "b"):
            client.capture(
                "$identify",
                distinct_id=f"user-{n}",
                properties={"$anon_distinct_id": f"anon-{n}", "$set": {"who": n}},
            )
        # both persons are identified now: this $identify must not merge them
        client.capture("$identify", distinct_id="user-a", properties={"$anon_distinct_id": "user-b"})
        client.flush()
        a = quill.person("user-a")
        b = quill.person("user-b")
        assert sorted(a["distinct_ids"]) == ["anon-a", "user-a"]
        assert sorted(b["distinct_ids"]) == ["anon-b", "user-b"]
        assert a["uuid"] != b["uuid"]
        assert a["is_identified"] and b["is_identified"]
        # neither does an alias
        client.alias(previous_id="user-a", distinct_id="user-b")
        client.flush()
        assert quill.person("user-b")["uuid"] == b["uuid"]
        # $merge_dangerously forces it
        client.capture("$merge_dangerously", distinct_id="user-a", properties={"alias": "user-b"})
        client.shutdown()
    assert not errors, errors
    wire.assert_all_ok(quill.url)

    merged = quill.person("user-a")
    assert sorted(merged["distinct_ids"]) == ["anon-a", "anon-b", "user-a", "user-b"]
    assert merged["properties"]["who"] == "a"  # the target's own value wins
    assert quill.person("user-b")["uuid"] == merged["uuid"]
    assert len(quill.persons()) == 1


def test_alias_links_two_anonymous_ids(quill):
    errors: list = []
    with Wire() as wire:
        client = make_client(quill, errors, gzip=True, sync_mode=True)
        client.capture("visited", distinct_id="device-42", properties={"$set": {"os": "linux"}})
        client.capture("logged_in", distinct_id="account-7", properties={"$set": {"plan": "team"}})
        client.alias(previous_id="account-7", distinct_id="device-42")
        client.capture("after_alias", distinct_id="device-42")
        client.shutdown()
    assert not errors, errors
    wire.assert_all_ok(quill.url)

    events = quill.events()
    alias = by_event(events)["$create_alias"]
    assert len(alias) == 1
    assert alias[0]["distinct_id"] == "account-7"
    assert alias[0]["properties"]["alias"] == "device-42"

    person = quill.person("account-7")
    assert sorted(person["distinct_ids"]) == ["account-7", "device-42"]
    assert person["properties"]["os"] == "linux"
    assert person["properties"]["plan"] == "team"
    assert person["is_identified"] is True
    assert quill.person("device-42")["uuid"] == person["uuid"]
    assert len(quill.persons()) == 1
    assert sorted(e["event"] for e in quill.events(person_id=person["uuid"])) == sorted(
        ["visited", "logged_in", "$create_alias", "after_alias"]
    )


def test_alias_to_a_new_id(quill):
    """An alias whose new id has never been seen attaches it to the existing person."""
    errors: list = []
    client = make_client(quill, errors, sync_mode=True)
    client.capture("seen", distinct_id="old-id")
    client.alias(previous_id="old-id", distinct_id="brand-new-id")
    client.capture("later", distinct_id="brand-new-id")
    client.shutdown()
    assert not errors, errors
    person = quill.person("brand-new-id")
    assert sorted(person["distinct_ids"]) == ["brand-new-id", "old-id"]
    assert quill.person("old-id")["uuid"] == person["uuid"]
    assert len(quill.persons()) == 1


def test_set_set_once_and_unset(quill):
    errors: list = []
    with Wire() as wire:
        client = make_client(quill, errors, sync_mode=True)
        client.set(distinct_id="p-1", properties={"plan": "free", "seats": 1})
        client.set_once(distinct_id="p-1", properties={"first_plan": "free", "plan": "ignored"})
        client.set(distinct_id="p-1", properties={"plan": "pro", "seats": 5})
        client.set_once(distinct_id="p-1", properties={"first_plan": "pro"})
        client.capture("tmp", distinct_id="p-1", properties={"$set": {"temp": 1}})
        client.capture("untmp", distinct_id="p-1", properties={"$unset": ["temp"]})
        client.shutdown()
    assert not errors, errors
    wire.assert_all_ok(quill.url)

    person = quill.person("p-1")
    props = {k: v for k, v in person["properties"].items() if not k.startswith("$")}
    assert props == {"plan": "pro", "seats": 5, "first_plan": "free"}
    assert person["is_identified"] is False

    events = quill.events(distinct_id="p-1")
    assert [e["event"] for e in reversed(events)] == [
        "$set",
        "$set_once",
        "$set",
        "$set_once",
        "tmp",
        "untmp",
    ]
    first_set = list(reversed(events))[0]
    assert first_set["properties"]["$set"] == {"plan": "free", "seats": 1}
    assert list(reversed(events))[1]["properties"]["$set_once"] == {
        "first_plan": "free",
        "plan": "ignored",
    }


def test_group_identify_and_grouped_capture(quill):
    errors: list = []
    with Wire() as wire:
        client = make_client(quill, errors, sync_mode=True, gzip=True)
        client.group_identify("company", "acme", {"name": "Acme Inc", "employees": 11}, distinct_id="g-user")
        client.capture("report_viewed", distinct_id="g-user", groups={"company": "acme"})
        client.shutdown()
    assert not errors, errors
    wire.assert_all_ok(quill.url)

    events = by_event(quill.events(distinct_id="g-user"))
    gi = events["$groupidentify"][0]
    assert gi["properties"]["$group_type"] == "company"
    assert gi["properties"]["$group_key"] == "acme"
    assert gi["properties"]["$group_set"] == {"name": "Acme Inc", "employees": 11}
    rv = events["report_viewed"][0]
    assert rv["properties"]["$groups"] == {"company": "acme"}
    assert quill.person("g-user") is not None


def test_batch_with_one_invalid_event_is_refused_whole(quill):
    good = {"event": "ok_event", "distinct_id": "batch-user", "properties": {"n": 1}}
    bad = {"event": "bad_event", "properties": {"n": 2}}  # no distinct_id
    r = requests.post(
        f"{quill.url}/batch/",
        json={"api_key": TOKEN, "batch": [good, dict(good), bad]},
        timeout=15,
    )
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["type"] == "validation_error"
    assert body["index"] == 2
    assert body["attr"] == "distinct_id"

    # the same, gzipped, with a non-string event name in the middle
    payload = json.dumps(
        {"api_key": TOKEN, "batch": [good, {"event": 7, "distinct_id": "x"}, good]}
    ).encode()
    r = requests.post(
        f"{quill.url}/batch/",
        data=gzip.compress(payload),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        timeout=15,
    )
    assert r.status_code == 400, r.text
    assert r.json()["index"] == 1

    assert quill.events() == []
    assert quill.persons() == []

    # the valid events alone are accepted, proving the reads above were not just empty
    r = requests.post(f"{quill.url}/batch/", json={"api_key": TOKEN, "batch": [good, good]}, timeout=15)
    assert r.status_code == 200, r.text
    assert [e["event"] for e in quill.events()] == ["ok_event", "ok_event"]
    assert quill.person("batch-user") is not None


def test_unknown_token_is_refused(quill):
    r = requests.post(
        f"{quill.url}/batch/",
        json={"api_key": "phc_nobody", "batch": [{"event": "x", "distinct_id": "y"}]},
        timeout=15,
    )
    assert r.status_code == 401, r.text
    assert quill.events() == []


def test_process_person_profile_false_creates_no_person(quill):
    errors: list = []
    with Wire() as wire:
        client = make_client(quill, errors, sync_mode=True)
        client.capture(
            "personless",
            distinct_id="ghost-1",
            properties={"$process_person_profile": False, "$set": {"should": "not apply"}},
        )
        # the SDK itself marks an event without a distinct id as personless
        generated = client.capture("anonymous_server_event", properties={"k": "v"})
        client.capture("personful", distinct_id="real-1")
        client.shutdown()
    assert not errors, errors
    wire.assert_all_ok(quill.url)

    ghost = quill.events(distinct_id="ghost-1")
    assert [e["event"] for e in ghost] == ["personless"]
    assert ghost[0]["properties"]["$process_person_profile"] is False
    assert ghost[0]["person_id"] is None
    assert quill.person("ghost-1") is None

    anon = by_event(quill.events())["anonymous_server_event"]
    assert len(anon) == 1 and anon[0]["uuid"] == generated
    assert anon[0]["properties"]["$process_person_profile"] is False
    assert quill.person(anon[0]["distinct_id"]) is None

    assert [p["distinct_ids"] for p in quill.persons()] == [["real-1"]]


def test_delete_person_with_events(quill):
    errors: list = []
    client = make_client(quill, errors, sync_mode=True)
    client.capture("$identify", distinct_id="del-user", properties={"$anon_distinct_id": "del-anon"})
    client.capture("e1", distinct_id="del-anon")
    client.capture("e2", distinct_id="del-user")
    client.capture("kept", distinct_id="other-user")
    client.shutdown()
    assert not errors, errors

    person = quill.person("del-user")
    r = quill.http.delete(
        f"{quill.url}/api/projects/1/persons/{person['uuid']}",
        params={"delete_events": "true"},
        timeout=30,
    )
    assert r.status_code == 204, r.text
    assert quill.person("del-user") is None
    assert quill.person("del-anon") is None
    assert [e["event"] for e in quill.events()] == ["kept"]


def test_pagination_and_restart_keep_everything(quill):
    errors: list = []
    client = make_client(quill, errors, flush_at=100, flush_interval=30, gzip=True)
    sent = [client.capture("tick", distinct_id="pager", properties={"n": n}) for n in range(25)]
    client.flush()
    client.shutdown()
    assert not errors, errors

    first = quill.api("/events", distinct_id="pager", limit=10)
    assert len(first["results"]) == 10 and first["next"]
    seen = quill.events(distinct_id="pager", limit=10)
    assert sorted(e["uuid"] for e in seen) == sorted(sent)
    assert len({e["uuid"] for e in seen}) == 25

    # a graceful stop and a start on the same data directory loses nothing
    assert quill.stop() == 0, quill.logs()
    quill.start()
    again = quill.events(distinct_id="pager")
    assert sorted(e["uuid"] for e in again) == sorted(sent)
    assert quill.person("pager")["distinct_ids"] == ["pager"]


def test_read_api_requires_the_personal_key(quill):
    r = requests.get(f"{quill.url}/api/projects/1/events", timeout=15)
    assert r.status_code == 401
    r = requests.get(
        f"{quill.url}/api/projects/1/events",
        headers={"Authorization": "Bearer phx_wrong"},
        timeout=15,
    )
    assert r.status_code == 401


def test_historical_timestamps_are_kept(quill):
    """The SDK sends `timestamp` and a batch `sent_at`; the skew correction keeps the
    event's time within the (tiny) client-server clock skew of what was captured."""
    from datetime import datetime, timedelta, timezone

    errors: list = []
    client = make_client(quill, errors, sync_mode=True)
    when = datetime(2024, 2, 29, 12, 34, 56, 789000, tzinfo=timezone.utc)
    client.capture("back_then", distinct_id="time-user", timestamp=when)
    client.capture("now_ish", distinct_id="time-user")
    client.shutdown()
    assert not errors, errors

    events = by_event(quill.events(distinct_id="time-user"))
    stored = datetime.fromisoformat(events["back_then"][0]["timestamp"].replace("Z", "+00:00"))
    assert abs(stored - when) < timedelta(seconds=5), (stored, when)
    now_ish = datetime.fromisoformat(events["now_ish"][0]["timestamp"].replace("Z", "+00:00"))
    assert abs(now_ish - datetime.now(timezone.utc)) < timedelta(minutes=2)
    after = quill.events(distinct_id="time-user", after="2024-03-01T00:00:00Z")
    assert [e["event"] for e in after] == ["now_ish"]
    before = quill.events(distinct_id="time-user", before="2024-03-01T00:00:00Z")
    assert [e["event"] for e in before] == ["back_then"]


def test_person_deletion_then_recapture_and_restart(quill):
    errors: list = []
    client = make_client(quill, errors, sync_mode=True)
    client.capture("$identify", distinct_id="u", properties={"$anon_distinct_id": "a", "$set": {"x": 1}})
    client.capture("e1", distinct_id="u")
    old = quill.person("u")
    r = quill.http.delete(
        f"{quill.url}/api/projects/1/persons/{old['uuid']}", params={"delete_events": "true"}, timeout=30
    )
    assert r.status_code == 204, r.text
    r = quill.http.get(f"{quill.url}/api/projects/1/persons/{old['uuid']}", timeout=30)
    assert r.status_code == 404, r.text
    # the same distinct id comes back: a fresh person, and only the new event
    client.capture("e2", distinct_id="u", properties={"$set": {"y": 2}})
    client.shutdown()
    assert not errors, errors
    new = quill.person("u")
    assert new is not None and new["uuid"] != old["uuid"]
    assert new["distinct_ids"] == ["u"]
    assert new["properties"].get("y") == 2 and "x" not in new["properties"]
    assert quill.person("a") is None
    assert [e["event"] for e in quill.events()] == ["e2"]

    assert quill.stop() == 0, quill.logs()
    quill.start()
    assert [e["event"] for e in quill.events()] == ["e2"]
    assert quill.person("u") == new
    assert quill.persons() == [new]


def test_merges_are_identical_after_restart(quill):
    errors: list = []
    client = make_client(quill, errors, sync_mode=True)
    client.capture("x", distinct_id="anon")
    client.capture("$identify", distinct_id="user", properties={"$anon_distinct_id": "anon", "$set": {"k": "v"}})
    client.alias(previous_id="user", distinct_id="alias2")
    client.capture("y", distinct_id="other", properties={"$set_once": {"z": 1}})
    client.shutdown()
    assert not errors, errors
    before = quill.persons()
    assert len(before) == 2
    assert quill.stop() == 0, quill.logs()
    quill.start()
    assert quill.persons() == before


def test_distinct_ids_with_url_special_characters(quill):
    errors: list = []
    client = make_client(quill, errors, flush_at=100, flush_interval=30)
    did = "a b+c/é&d=e?%25#漢"
    for n in range(7):
        client.capture("t", distinct_id=did, properties={"n": n})
    client.capture("t", distinct_id="a b c")  # must not match the one above
    client.flush()
    client.shutdown()
    assert not errors, errors
    # small pages, so the `next` URLs (which re-encode the filters) are followed
    events = quill.events(distinct_id=did, limit=3, after="2020-01-01T00:00:00+00:00")
    assert sorted(e["properties"]["n"] for e in events) == list(range(7))
    assert {e["distinct_id"] for e in events} == {did}
    assert quill.person(did)["distinct_ids"] == [did]


def test_illegal_merge_ids_never_fuse_persons(quill):
    errors: list = []
    client = make_client(quill, errors, sync_mode=True)
    for user in ("u1", "u2"):
        client.capture("$identify", distinct_id=user, properties={"$anon_distinct_id": "anonymous"})
        client.capture("$identify", distinct_id=user, properties={"$anon_distinct_id": "null"})
        client.alias(previous_id=user, distinct_id="undefined")
    client.shutdown()
    assert not errors, errors
    assert quill.person("u1")["distinct_ids"] == ["u1"]
    assert quill.person("u2")["distinct_ids"] == ["u2"]
    assert quill.person("u1")["uuid"] != quill.person("u2")["uuid"]
    assert quill.person("anonymous") is None


def test_concurrent_consumers_and_historical_migration(quill):
    errors: list = []
    with Wire() as wire:
        client = make_client(quill, errors, gzip=True, thread=3, flush_at=20, flush_interval=0.05)
        for n in range(300):
            client.capture("burst", distinct_id=f"u{n % 10}", properties={"n": n})
        client.flush()
        client.shutdown()
        migration = make_client(quill, errors, sync_mode=True, historical_migration=True)
        migration.capture("imported", distinct_id="u0")
        migration.shutdown()
    assert not errors, errors
    wire.assert_all_ok(quill.url)
    assert len(wire.calls) >= 300 // 20
    burst = quill.events(event="burst", limit=1000)
    assert sorted(e["properties"]["n"] for e in burst) == list(range(300))
    assert sorted(p["distinct_ids"][0] for p in quill.persons()) == sorted(f"u{i}" for i in range(10))
    assert [e["event"] for e in quill.events(event="imported")] == ["imported"]
