"""The DuckDB peer for `quill bench insights`: the same trend, funnel and retention computed
from scratch over the same events (the CSV that `quill bench insights --dump` writes).

Prints one line per query with the best of three runs in milliseconds, as JSON, so that
benches/insights/run.sh can put the two systems side by side.
"""

from __future__ import annotations

import json
import sys
import time

import duckdb

DAY = 86_400_000

TREND = """
SELECT ts_ms // {day} AS day, count(*) FROM events
WHERE event = '$pageview' AND ts_ms >= {since}
GROUP BY 1 ORDER BY 1
"""

# Ordered funnel, 14-day window from step 1: every pageview starts an attempt; each next step is
# the first matching event at or after the previous one (ASOF), within the window.
FUNNEL = """
WITH pv AS (SELECT distinct_id, ts_ms AS t0 FROM events WHERE event = '$pageview' AND ts_ms >= {since}),
su AS (SELECT distinct_id, ts_ms AS t FROM events WHERE event = 'signed_up' AND ts_ms >= {since}),
pu AS (SELECT distinct_id, ts_ms AS t FROM events WHERE event = 'purchase' AND ts_ms >= {since}),
s1 AS (SELECT pv.distinct_id, pv.t0, su.t AS t1 FROM pv ASOF LEFT JOIN su
       ON pv.distinct_id = su.distinct_id AND su.t >= pv.t0),
s2 AS (SELECT s1.distinct_id, s1.t0,
              CASE WHEN s1.t1 <= s1.t0 + 14 * {day} THEN s1.t1 END AS t1
       FROM s1),
s3 AS (SELECT s2.distinct_id, s2.t0, s2.t1, pu.t AS t2 FROM s2 ASOF LEFT JOIN pu
       ON s2.distinct_id = pu.distinct_id AND pu.t >= s2.t1),
steps AS (SELECT distinct_id,
                 max(CASE WHEN t1 IS NULL THEN 1
                          WHEN t2 IS NOT NULL AND t2 <= t0 + 14 * {day} THEN 3
                          ELSE 2 END) AS reached
          FROM s3 GROUP BY 1)
SELECT count(*) FILTER (WHERE reached >= 1), count(*) FILTER (WHERE reached >= 2),
       count(*) FILTER (WHERE reached >= 3) FROM steps
"""

# Recurring day retention over 14 intervals: cohort days with a pageview, returns k days later.
RETENTION = """
WITH days AS (SELECT DISTINCT distinct_id, ts_ms // {day} AS d FROM events
              WHERE event = '$pageview' AND ts_ms >= {since})
SELECT a.d AS cohort, b.d - a.d AS k, count(DISTINCT a.distinct_id)
FROM days a JOIN days b ON a.distinct_id = b.distinct_id AND b.d >= a.d AND b.d < a.d + 14
GROUP BY 1, 2 ORDER BY 1, 2
"""


def best_of(con, sql: str, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        con.execute(sql).fetchall()
        best = min(best, time.perf_counter() - t)
    return best * 1000


def main() -> None:
    path = sys.argv[1]
    con = duckdb.connect()
    t = time.perf_counter()
    con.execute(f"CREATE TABLE events AS SELECT * FROM read_csv_auto('{path}')")
    load_ms = (time.perf_counter() - t) * 1000
    n = con.execute("SELECT count(*) FROM events").fetchone()[0]
    since = con.execute("SELECT max(ts_ms) FROM events").fetchone()[0] - 30 * DAY
    out = {"events": n, "load_ms": round(load_ms), "duckdb": duckdb.__version__}
    for name, sql in [("trend", TREND), ("funnel", FUNNEL), ("retention", RETENTION)]:
        out[name + "_ms"] = round(best_of(con, sql.format(day=DAY, since=since)), 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
