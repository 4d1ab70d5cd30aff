"""What the dashboard reads from the request log beyond totals (core/store/request_log.py):
time series per account or model, latency percentiles, errors grouped by kind, text search and
single entries. Control-plane threads only (blocking database calls)."""

from __future__ import annotations

import math
import re
import time
from array import array
from collections import defaultdict
from typing import Any

from core.store.db import Connection
from core.store.request_log import _TOTALS, BUCKETS, LOG_COLUMNS, NO_KEY, bucket_start, scope

GROUPS = {"account": "account_id", "model": "model", "key": "key_id"}
OUTCOMES = {"ok": "status >= 200 AND status < 400 AND error IS NULL", "error": "(status >= 400 OR status = 0 OR error IS NOT NULL)"}
SEARCHED = ("request_id", "model", "requested_model", "path", "error", "account_id", "protocol", "key_id")
PERCENTILES = (50, 90, 99)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def series(db: Connection, since: float, bucket: str, group: str, until: float | None = None,
           key_id: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Totals per (time bucket, account, model or client key), oldest first; empty buckets left out."""
    size, column = BUCKETS[bucket], GROUPS[group]
    where, params = scope(since, key_id, time.time() if until is None else until)
    sql = (f"SELECT {bucket_start(size)}, {column} AS key, {_TOTALS} FROM request_log "
           f"{where} GROUP BY bucket_start, key ORDER BY bucket_start")  # fmt: skip
    return [dict(r) for r in db.query(sql, params)]


def percentile(ordered: list[float] | array[float], p: float) -> float | None:
    """The ``p``-th percentile of sorted values, linearly interpolated."""
    if not ordered:
        return None
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (rank - low), 2)


def _spread(values: array[float]) -> dict[str, Any]:
    ordered = sorted(values)
    return {"count": len(ordered), **{f"p{p}": percentile(ordered, p) for p in PERCENTILES}}


def latency(db: Connection, since: float, bucket: str, key_id: str | None = None) -> dict[str, Any]:
    """Time to first byte of answered requests and output speed (tokens/s after the first byte)
    of streamed ones: percentiles over the range and p50/p90 per time bucket."""
    size = BUCKETS[bucket]
    ttfb: dict[int, array[float]] = defaultdict(lambda: array("d"))
    speed: dict[int, array[float]] = defaultdict(lambda: array("d"))
    where, params = scope(since, key_id)
    answered = "status >= 200 AND status < 400 AND ttfb_ms IS NOT NULL"
    sql = f"SELECT ts, ttfb_ms, duration_ms, output_tokens, stream FROM request_log {where} {'AND' if where else 'WHERE'} {answered}"
    for row in db.execute(sql, params):
        ts, first, total, tokens, stream = row
        start = int(ts // size) * size
        ttfb[start].append(first)
        generating = (total or 0) - first
        if stream and tokens and generating > 0:
            speed[start].append(tokens / (generating / 1000))
    points = []
    for start in sorted(ttfb.keys() | speed.keys()):
        t, s = sorted(ttfb.get(start, ())), sorted(speed.get(start, ()))
        points.append({"bucket_start": start, "ttfb_p50": percentile(t, 50), "ttfb_p90": percentile(t, 90),
                       "tps_p50": percentile(s, 50), "tps_p90": percentile(s, 90)})  # fmt: skip
    every = array("d")
    every_speed = array("d")
    for values in ttfb.values():
        every.extend(values)
    for values in speed.values():
        every_speed.extend(values)
    return {"ttfb_ms": _spread(every), "tokens_per_second": _spread(every_speed), "points": points}


def error_kind(status: int | None, error: str | None) -> str:
    """Errors that differ only in their numbers (retry times, ids) are one kind."""
    return f"{status or 0} {_NUMBER.sub('#', error or '').strip()}".strip()


def error_groups(db: Connection, since: float | None, limit: int = 50) -> list[dict[str, Any]]:
    """Failed requests grouped by kind, most frequent first, each with its latest example."""
    where, params = (f"WHERE ts >= ? AND {OUTCOMES['error']}", [since]) if since else (f"WHERE {OUTCOMES['error']}", [])
    groups: dict[str, dict[str, Any]] = {}
    for row in db.query(f"SELECT id, ts, request_id, status, error, model, protocol, account_id FROM request_log {where} ORDER BY ts DESC", params):
        kind = error_kind(row["status"], row["error"])
        group = groups.get(kind)
        if group is None:
            groups[kind] = group = {"kind": kind, "status": row["status"], "count": 0, "last_ts": row["ts"], "example": dict(row),
                                    "models": set(), "accounts": set()}  # fmt: skip
        group["count"] += 1
        group["first_ts"] = row["ts"]
        group["models"].add(row["model"])
        group["accounts"].add(row["account_id"])
    ranked = sorted(groups.values(), key=lambda g: (-g["count"], -g["last_ts"]))[:limit]
    return [{**g, "models": sorted(m for m in g["models"] if m), "accounts": sorted(a for a in g["accounts"] if a)} for g in ranked]


def search(db: Connection, limit: int, offset: int, filters: dict[str, Any], since: float | None = None,
           text: str | None = None, outcome: str | None = None) -> tuple[list[dict[str, Any]], int]:  # fmt: skip
    """The newest rows first: ``filters`` (column = value), newer than ``since``, containing
    ``text`` in one of the SEARCHED columns, ``outcome`` ok / error."""
    clauses, params = (["ts >= ?"], [since]) if since is not None else ([], [])
    for column, value in filters.items():
        if column == "key_id" and value == NO_KEY:
            clauses.append("key_id IS NULL")
        elif column in LOG_COLUMNS and value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if text:
        escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clauses.append("(" + " OR ".join(f"LOWER({column}) LIKE ? ESCAPE '\\'" for column in SEARCHED) + ")")
        pattern = f"%{escaped}%"
        params.extend([pattern] * len(SEARCHED))
    if outcome in OUTCOMES:
        clauses.append(OUTCOMES[outcome])
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    total = next(iter(db.query(f"SELECT COUNT(*) AS n FROM request_log {where}", params)))["n"]
    rows = db.query(f"SELECT * FROM request_log {where} ORDER BY ts DESC, id DESC LIMIT ? OFFSET ?", [*params, limit, offset])
    return [{k: row.get(k) for k in LOG_COLUMNS} for row in rows], total


def entry(db: Connection, entry_id: int) -> dict[str, Any] | None:
    row = next(iter(db.query("SELECT * FROM request_log WHERE id = ?", [entry_id])), None)
    return {k: row.get(k) for k in LOG_COLUMNS} if row else None
