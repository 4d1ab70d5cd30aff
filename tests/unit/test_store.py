"""The background writer and the refresh protocol's SQLite steps, on a real database file."""

from __future__ import annotations

import threading
from pathlib import Path

from core.accounts.model import Account
from core.store.accounts import AccountStore
from core.store.db import Database
from core.store.writer import BatchWriter


def test_batch_writer_coalesces_per_key_and_flushes() -> None:
    written: list[list[tuple[str, dict[str, int]]]] = []
    entered, gate = threading.Event(), threading.Event()

    def write(batch: list[tuple[str, dict[str, int]]]) -> None:
        entered.set()
        gate.wait(5)
        written.append(batch)

    writer: BatchWriter[tuple[str, dict[str, int]]] = BatchWriter(
        "test-writer", write, key=lambda item: item[0], merge=lambda old, new: (new[0], {**old[1], **new[1]})
    )
    writer.put(("a", {"x": 1}))
    assert entered.wait(5)  # the thread took "a" alone and is blocked writing it
    for value in range(2, 6):
        writer.put(("b", {"y": value}))
    writer.put(("c", {"z": 1}))
    writer.put(("b", {"w": 9}))
    assert not writer.flush(timeout=0.1)  # still blocked
    gate.set()
    assert writer.flush()
    assert written[0] == [("a", {"x": 1})]
    assert written[1] == [("c", {"z": 1}), ("b", {"y": 5, "w": 9})]  # merged, in the order last changed
    writer.close()


def test_batch_writer_survives_a_failed_write() -> None:
    seen: list[int] = []

    def write(batch: list[int]) -> None:
        if 1 in batch:
            raise OSError("disk full")
        seen.extend(batch)

    writer: BatchWriter[int] = BatchWriter("test-failing", write)
    writer.put(1)
    assert writer.flush()
    writer.put(2)
    assert writer.flush() and seen == [2]
    writer.close()


def test_refresh_claim_marker_and_commit(tmp_path: Path) -> None:
    store = AccountStore(Database(tmp_path / "t.db"))
    store.upsert(Account(id="acct_1", chatgpt_account_id="c1", access_token="at-1", refresh_token="rt-1"))

    claim = store.claim_refresh("acct_1", "me", lambda holder, started: False)
    assert claim.stored is not None and claim.stored.refresh_token == "rt-1" and not claim.busy and claim.interrupted_at is None
    other = store.claim_refresh("acct_1", "other", lambda holder, started: holder == "me")
    assert other.busy  # a live owner holds it
    assert [account_id for account_id, _ in store.interrupted_refreshes("other")] == ["acct_1"]

    taken = store.claim_refresh("acct_1", "next", lambda holder, started: False)  # "me" died
    assert taken.interrupted_at is not None and not taken.busy

    store.commit_tokens("acct_1", {"access_token": "at-2", "refresh_token": "rt-2", "status": "ignored"}, {"refresh_error": None})
    stored = store.get("acct_1")
    assert stored is not None and (stored.access_token, stored.refresh_token) == ("at-2", "rt-2")
    assert store.interrupted_refreshes("anyone") == []  # the commit cleared the marker

    store.claim_refresh("acct_1", "me", lambda holder, started: False)
    store.release_refresh("acct_1", "someone-else", {"last_error": "x"})  # not theirs: marker stays
    assert store.interrupted_refreshes("other")
    store.release_refresh("acct_1", "me")
    assert store.interrupted_refreshes("other") == []
    assert store.get("acct_1").last_error == "x"  # type: ignore[union-attr]


def test_request_log_batches_with_linger_and_prunes_old_rows(tmp_path: Path) -> None:
    import time

    from core.store.request_log import RequestLog

    log = RequestLog(Database(tmp_path / "log.db"))
    now = time.time()
    for age_days in (40, 31, 5, 0):
        log.record({"ts": now - age_days * 86400, "request_id": f"r{age_days}", "protocol": "openai", "status": 200})
    assert log.flush()  # a flush does not wait out the linger
    db = Database(tmp_path / "log.db").conn()
    assert db["request_log"].count == 4
    assert log.prune(now - 30 * 86400) == 2
    assert sorted(r["request_id"] for r in db["request_log"].rows) == ["r0", "r5"]
    log.close()


def test_batch_writer_lingers_to_batch_a_burst() -> None:
    batches: list[list[int]] = []
    writer: BatchWriter[int] = BatchWriter("linger-writer", batches.append, linger=0.3)
    for n in range(50):
        writer.put(n)
    assert writer.flush()
    assert batches == [list(range(50))]  # one commit for the burst, not one per item
    writer.close()
