"""The store's dialect layer on a real PostgreSQL server, side by side with SQLite: the same
migrations, the same table API, the same queries and answers; and what only a shared store has —
refresh locks across instances, messages between them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlite_utils.db import NotFoundError

from core.accounts.model import Account
from core.accounts.proxies import new_proxy
from core.store import log_queries
from core.store.accounts import AccountStore
from core.store.affinity import AffinityStore
from core.store.client_keys import ClientKeyStore, SpendDelta
from core.store.client_state import ClientState
from core.store.db import Database
from core.store.migrations import migrations
from core.store.postgres import PostgresDatabase
from core.store.proxies import ProxyStore
from core.store.request_log import RequestLog


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        db: Database = Database(tmp_path / "store.db")
    else:
        db = PostgresDatabase(request.getfixturevalue("pg_url"), 4)
    yield db
    db.close()


def schema(db: Database) -> dict[str, list[str]]:
    conn = db.conn()
    return {name: conn[name].columns_names if db.dialect == "postgresql" else [c.name for c in conn[name].columns]  # type: ignore[union-attr]
            for name in conn.table_names() if not name.startswith("sqlite_")}  # fmt: skip


def test_the_migration_chain_gives_both_dialects_the_same_schema(pg_url: str, tmp_path: Path) -> None:
    sqlite, pg = Database(tmp_path / "a.db"), PostgresDatabase(pg_url, 2)
    assert schema(pg) == schema(sqlite)
    assert {"accounts", "request_log", "request_bodies", "session_affinity"} <= set(schema(pg))
    for name in schema(pg):
        assert pg.conn()[name].pks == sqlite.conn()[name].pks, name
    applied = [m.name for m in migrations.applied(pg.conn())]  # type: ignore[arg-type]
    assert applied == [m.name for m in migrations.applied(sqlite.conn())] == [m.name for m in migrations._migrations]
    pg.close()
    again = PostgresDatabase(pg_url, 2)  # nothing pending the second time
    assert again.conn()["_sqlite_migrations"].count == len(applied)
    again.close()


def test_instances_starting_together_apply_each_step_once(pg_url: str) -> None:
    opened: list[PostgresDatabase] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            opened.append(PostgresDatabase(pg_url, 2))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors and len(opened) == 4
    names = [row["name"] for row in opened[0].conn()["_sqlite_migrations"].rows]
    assert sorted(names) == sorted(m.name for m in migrations._migrations)
    for db in opened:
        db.close()


def make_table(db: Database) -> Any:
    """A table as a later migration would write it: every option the guide in migrations.py names."""
    conn = db.conn()
    conn["owners"].create({"id": str, "name": str}, pk="id")
    conn["things"].create({"id": int, "owner": str, "label": str, "weight": float, "state": str},
                          pk="id", not_null={"label"}, defaults={"state": "new"}, foreign_keys=[("owner", "owners", "id")])  # fmt: skip
    conn["things"].add_column("flag", int, not_null_default=0)
    conn["things"].add_column("meta", str)
    conn["things"].create_index(["label"], unique=True)
    conn["owners"].insert({"id": "o1", "name": "first"})
    return conn


def test_the_table_api_answers_alike(database: Database) -> None:
    conn = make_table(database)
    things = conn["things"]
    assert things.insert({"owner": "o1", "label": "a", "weight": 1.5}).last_pk == 1
    assert things.insert({"owner": "o1", "label": "b", "weight": 2.0, "meta": {"k": [1, 2]}, "flag": True}).last_pk == 2
    row = things.get(2)
    assert row["meta"] == '{"k": [1, 2]}' and row["flag"] == 1 and row["state"] == "new"  # JSON text, bool as int, default
    things.insert({"id": 2, "owner": "o1", "label": "b2"}, replace=True)  # the whole row replaced
    assert {k: things.get(2)[k] for k in ("label", "weight", "meta", "state", "flag")} == {"label": "b2", "weight": None, "meta": None,
                                                                                            "state": "new", "flag": 0}  # fmt: skip
    things.insert({"id": 2, "owner": "o1", "label": "ignored"}, ignore=True)
    assert things.get(2)["label"] == "b2"
    things.upsert({"id": 1, "label": "a", "weight": 9.0}, pk="id")  # only the given columns
    assert (things.get(1)["owner"], things.get(1)["weight"]) == ("o1", 9.0)
    things.upsert({"id": 7, "owner": "o1", "label": "new one"}, pk="id")
    things.update(7, {"state": "done"})
    with pytest.raises(NotFoundError):
        things.update(99, {"state": "x"})
    with pytest.raises(NotFoundError):
        things.get(99)
    with pytest.raises(Exception):  # noqa: B017 - sqlite3.IntegrityError or psycopg's: the unique index holds
        with database.transaction() as tx:
            tx["things"].insert({"owner": "o1", "label": "a"})
    assert [r["label"] for r in things.rows_where("weight IS NULL OR weight > ?", [1], order_by="id DESC", limit=2, offset=0)] == ["new one", "b2"]
    assert things.count_where("owner = :owner", {"owner": "o1"}) == 3
    literal = list(conn.query("SELECT '?' AS mark, '100%' AS pct, label FROM things WHERE id = ?", [1]))
    assert literal == [{"mark": "?", "pct": "100%", "label": "a"}]
    conn.executemany("UPDATE things SET flag = ? WHERE id = ?", [(1, 1), (1, 7)])
    assert [r["id"] for r in things.rows_where("flag = ?", [1], order_by="id")] == [1, 7]
    things.delete(7)
    things.delete_where("label = ?", ["b2"])
    assert [r["id"] for r in things.rows] == [1]
    with database.transaction() as tx:  # a rolled-back block leaves nothing
        tx["things"].insert({"owner": "o1", "label": "kept?"})
        tx.execute("DELETE FROM things WHERE id = ?", [1])
        assert tx["things"].count == 1
    with pytest.raises(RuntimeError), database.transaction() as tx:
        tx["things"].insert({"owner": "o1", "label": "gone"})
        raise RuntimeError("roll back")
    assert [r["label"] for r in things.rows] == ["kept?"]


def test_numbering_and_reshaping_answer_alike(database: Database) -> None:
    conn = make_table(database)
    things = conn["things"]
    things.insert({"id": 10, "owner": "o1", "label": "ten", "weight": 1.0, "meta": "m"})
    assert things.insert({"owner": "o1", "label": "eleven"}).last_pk == 11  # after the numbered row, as in SQLite
    things.transform(rename={"weight": "mass"}, drop={"meta"})  # a later migration reshaping a table
    columns = conn["things"].columns_names if database.dialect == "postgresql" else [c.name for c in conn["things"].columns]  # type: ignore[union-attr]
    assert columns == ["id", "owner", "label", "mass", "state", "flag"]
    assert things.get(10)["mass"] == 1.0 and "meta" not in things.get(10)


def test_the_account_store_round_trip_is_the_same(database: Database) -> None:
    store = AccountStore(database)
    account = Account(id="acct_1", chatgpt_account_id="c1", access_token="at-1", refresh_token="rt-1", label="one", added_at=1.0)
    assert store.upsert(account) is True
    assert store.upsert(Account(id="acct_1", chatgpt_account_id="c1", access_token="at-2")) is False
    kept = store.get("acct_1")
    assert kept is not None and (kept.label, kept.refresh_token, kept.access_token, kept.added_at) == ("one", "rt-1", "at-2", 1.0)
    store.write_states({"acct_1": {"status": "rate_limited", "cooldown_until": 5.0, "access_token": "never"}, "missing": {"status": "x"}})
    assert (store.get("acct_1").status, store.get("acct_1").access_token) == ("rate_limited", "at-2")  # type: ignore[union-attr]
    assert [a.id for a in store.get_many(["acct_1", "nope"])] == ["acct_1"]
    assert store.delete(["acct_1", "nope"]) == ["acct_1"] and store.all() == []


def test_the_request_log_reads_alike(pg_url: str, tmp_path: Path) -> None:
    now = time.time()
    rows = [{"ts": now - i * 97.5, "request_id": f"r{i}", "account_id": f"acct_{i % 3}", "model": ("gpt-5.4", "gpt-5.5")[i % 2],
             "protocol": "openai", "path": "/v1/chat/completions", "stream": i % 2, "status": 429 if i % 7 == 0 else 200,
             "error": f"Rate limited for {i}s" if i % 7 == 0 else None, "input_tokens": 10 + i, "output_tokens": 5 + i,
             "cached_tokens": i, "reasoning_tokens": 0, "ttfb_ms": 50.0 + i, "duration_ms": 900.0 + 10 * i, "attempts": 1}
            for i in range(40)]  # fmt: skip
    answers = []
    for db in (Database(tmp_path / "log.db"), PostgresDatabase(pg_url, 2)):
        log = RequestLog(db)
        for row in rows:
            log.record(row)
        assert log.flush()
        conn = db.conn()
        answers.append({
            "summary": log.summary(now - 3000), "history": log.history(now - 7200, "five_min"),
            "series": log_queries.series(conn, now - 7200, "five_min", "account"),
            "latency": log_queries.latency(conn, now - 7200, "hourly"),
            "errors": [{k: v for k, v in g.items() if k != "example"} for g in log_queries.error_groups(conn, None)],
            "search": log_queries.search(conn, 5, 2, {"model": "gpt-5.4"}, text="RATE limited", outcome="error"),
            "entry": log_queries.entry(conn, 3), "pruned": log.prune(now - 1000),
        })  # fmt: skip
        log.close()
        db.close()
    sqlite, pg = answers
    assert pg == sqlite
    assert sqlite["summary"]["totals"]["requests"] == 31 and sqlite["search"][1] == 3 and sqlite["pruned"] == 29


def test_the_client_state_store_works_unchanged(database: Database) -> None:
    """core/store/client_state.py was written for SQLite alone; it runs on both as it is."""
    state = ClientState(database)
    assert state.get("release") is None
    state.put("release", {"version": "0.171.0"})
    state.put("release", {"version": "0.172.0"})
    assert state.get("release") == {"version": "0.172.0"}


def test_the_proxy_and_client_key_stores_work_unchanged(database: Database) -> None:
    """Two more modules written for SQLite (their SQL kept in the common subset) on both."""
    proxies = ProxyStore(database)
    proxy = new_proxy("socks5://user:pw@127.0.0.1:1080")
    proxies.save([proxy])
    AccountStore(database).upsert(Account(id="acct_1", chatgpt_account_id="c1", access_token="t"))
    proxies.assign({"acct_1": ("specific", proxy.id), "missing": ("automatic", None)})
    proxies.write_changes([("health", proxy.id, {"status": "ok", "checked_at": 1.0, "latency_ms": 12.5, "exit_ip": "203.0.113.9",
                                                 "last_error": None})])  # fmt: skip
    assert [(p.id, p.status, p.password) for p in proxies.all()] == [(proxy.id, "ok", "pw")]
    assert proxies.assignments() == {"acct_1": ("specific", proxy.id)}
    AccountStore(database).delete(["acct_1"])
    assert proxies.assignments() == {}  # ON DELETE CASCADE on both

    keys = ClientKeyStore(database)
    keys.insert({"id": "k1", "digest": "d1", "label": "one", "created_at": 1.0, "spent_tokens": 0, "spent_usd": 0.0})
    keys.save_spend(SpendDelta("k1", 120, 0.25, 10.0, 11.0))
    assert keys.flush()
    assert {k: keys.all()[0][k] for k in ("spent_tokens", "spent_usd", "enabled")} == {"spent_tokens": 120, "spent_usd": 0.25, "enabled": 1}
    assert keys.delete("k1") and keys.all() == []
    keys.close()


def test_client_key_spending_adds_up_alike(database: Database) -> None:
    """Increments add to the stored period, start a later one over, and are dropped when they were
    charged in an earlier period or before a restart; each write returns the totals it left."""
    keys = ClientKeyStore(database)
    versions: list[int] = []
    keys.on_written(lambda pairs: versions.extend(totals.version for _, totals in pairs))
    keys.insert({"id": "k1", "digest": "d1", "label": "one", "created_at": 1.0, "spent_tokens": 0, "spent_usd": 0.0, "period_start": 0.0})

    def spend(tokens: int, start: float, restarts: int = 0) -> tuple[int, float, float, int]:
        keys.save_spend(SpendDelta("k1", tokens, tokens / 100, start, 50.0 + tokens, restarts))
        assert keys.flush()
        row = keys.all()[0]
        return row["spent_tokens"], row["spent_usd"], row["period_start"], row["spend_restarts"]

    assert spend(100, 10.0) == (100, 1.0, 10.0, 0)  # a later period than the stored one (0.0): started over
    assert spend(20, 10.0) == (120, 1.2, 10.0, 0)
    assert spend(7, 5.0) == (120, 1.2, 10.0, 0)  # charged in a period that is over
    assert spend(3, 20.0) == (3, 0.03, 20.0, 0)  # the next period
    restarted = keys.restart("k1", 20.0)
    assert restarted is not None and (restarted["spent_tokens"], restarted["spend_restarts"]) == (0, 1)
    assert spend(9, 20.0) == (0, 0.0, 20.0, 1)  # charged before the restart was known
    assert spend(4, 20.0, restarts=1) == (4, 0.04, 20.0, 1)
    assert versions == [1, 2, 3, 4, 6, 7]  # the restart was write 5
    assert keys.all()[0]["last_used_at"] == 150.0  # the latest use, whichever write came last
    assert keys.update_settings({**keys.all()[0], "label": "renamed"}, restart_at=30.0)["spend_restarts"] == 2  # type: ignore[index]
    assert keys.update_settings({**keys.all()[0], "id": "gone"}) is None
    keys.close()


def test_affinity_rows_load_and_look_up_alike(database: Database) -> None:
    store = AffinityStore(database)
    now = time.time()
    store.write([("c1", "acct_1", now + 60), ("c2", "acct_2", now + 120), ("old", "acct_1", now - 1)], [])
    store.write([("c1", "acct_3", now + 90)], [("c1", "acct_3", now + 90)])
    assert store.load(now, 10) == [("c2", "acct_2", pytest.approx(now + 120)), ("c1", "acct_3", pytest.approx(now + 90))]
    assert store.lookup("c1", now) == ("acct_3", pytest.approx(now + 90)) and store.lookup("old", now) is None


# --- only a shared store -----------------------------------------------------------------------------


def test_the_refresh_lock_is_one_per_account_across_instances_and_dies_with_its_holder(pg_url: str) -> None:
    first, second = PostgresDatabase(pg_url, 2), PostgresDatabase(pg_url, 2)
    mine, theirs = AccountStore(first), AccountStore(second)
    mine.upsert(Account(id="acct_1", chatgpt_account_id="c1", access_token="at-1", refresh_token="rt-1"))
    never_alive = lambda holder, started: False  # noqa: E731 - on PostgreSQL the lock, not the pid, tells
    claim = mine.claim_refresh("acct_1", "first", never_alive)
    assert not claim.busy and claim.interrupted_at is None
    assert theirs.claim_refresh("acct_1", "second", never_alive).busy
    assert theirs.interrupted_refreshes("second") == []  # a live holder's marker is no orphan
    mine.commit_tokens("acct_1", {"access_token": "at-2", "refresh_token": "rt-2"}, {})
    taken = theirs.claim_refresh("acct_1", "second", never_alive)  # released with the commit
    assert not taken.busy and taken.stored is not None and taken.stored.refresh_token == "rt-2"
    assert mine.claim_refresh("acct_1", "first", never_alive).busy

    with psycopg.connect(pg_url, autocommit=True) as admin:  # the holder's process dies, and its session with it
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid <> 0")
    orphaned = wait_until(lambda: mine.interrupted_refreshes("first"))
    assert [account_id for account_id, _ in orphaned] == ["acct_1"]
    recovered = mine.claim_refresh("acct_1", "first", never_alive)
    assert not recovered.busy and recovered.interrupted_at is not None  # the marker of the dead one, seen for what it is
    mine.release_refresh("acct_1", "first")
    assert theirs.claim_refresh("acct_1", "second", never_alive).busy is False  # the lock session came back by itself
    first.close()
    second.close()


def wait_until(probe: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return value


def test_changes_reach_the_other_instance_and_not_their_author(pg_url: str) -> None:
    first, second = PostgresDatabase(pg_url, 2), PostgresDatabase(pg_url, 2)
    heard: dict[str, list[Any]] = {"first": [], "second": []}
    reloads: list[str] = []
    for name, db in (("first", first), ("second", second)):
        AccountStore(db).on_remote_change(lambda ids, n=name: heard[n].append(("changed", ids)),
                                          lambda ids, n=name: heard[n].append(("removed", ids)),
                                          lambda n=name: reloads.append(n))  # fmt: skip
        db.events.start()
    wait_until(lambda: sorted(reloads) == ["first", "second"])
    store = AccountStore(first)
    ids = [f"acct_{i:04d}" for i in range(1500)]  # more than one NOTIFY payload can hold
    with first.transaction() as tx:
        tx["accounts"].insert_all([{"id": i, "chatgpt_account_id": i, "access_token": "t", "status": "active"} for i in ids])
    store.write_states({i: {"status": "banned"} for i in ids})
    started = time.monotonic()  # committed
    wait_until(lambda: sum(len(i) for kind, i in heard["second"] if kind == "changed") == 1500)
    assert time.monotonic() - started < 1.0
    store.delete(["acct_0001"])
    wait_until(lambda: ("removed", ["acct_0001"]) in heard["second"])
    assert heard["first"] == []  # its own messages are not news to it

    with psycopg.connect(pg_url, autocommit=True) as admin:  # the listener's connection is cut
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'")
    wait_until(lambda: reloads.count("first") == 2 and reloads.count("second") == 2, timeout=10)  # back, and reloaded
    first.close()
    second.close()
