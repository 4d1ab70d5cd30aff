"""Several real proxy processes (``mitmdump -s addons/codex.py``) sharing one pool on a real
PostgreSQL server (``store.url``), against the one fake Codex backend.

What must hold whichever instance a request reaches: one token refresh per account at a time and
every instance on the new token; a kill -9 in the middle of a refresh loses no token; a limit, a
ban or an expiry seen by one instance steers the others within a second; a conversation stays on
its account; any instance's dashboard shows the whole pool and everyone's usage.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import psycopg
import pytest
from psycopg.rows import dict_row

from codex_fake import FakeCodexThread
from codex_fake import faults as sc
from tests.conftest import proxy_config
from tests.support.accounts import account, add, chat, served, wait_for
from tests.support.proxy import ProxyProcess

StartInstances = Callable[..., list[ProxyProcess]]
REFRESH_NOW = {"refresh_margin_seconds": 7200}  # the fake's tokens live 1h: a 2h margin refreshes at once


class EnvConfiguredProxy(ProxyProcess):
    """Told where the store is by CODEX_PROXY_STORE_URL rather than local.yaml."""

    def __init__(self, *args: Any, store_url: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.store_url = store_url

    def environment(self) -> dict[str, str]:
        return {**super().environment(), "CODEX_PROXY_STORE_URL": self.store_url}


@pytest.fixture
def start_instances(fake: FakeCodexThread, pg_url: str, tmp_path: Path) -> Iterator[StartInstances]:
    """``start_instances(n, **config)``: n proxies on the test's database; the last one finds the
    database through the environment variable, the others through local.yaml."""
    started: list[ProxyProcess] = []

    def start(count: int = 3, **config: Any) -> list[ProxyProcess]:
        for index in range(count):
            data_dir = tmp_path / f"instance-{index}"
            if index == count - 1:
                process: ProxyProcess = EnvConfiguredProxy(data_dir, proxy_config(fake, **config), store_url=pg_url)
            else:
                process = ProxyProcess(data_dir, proxy_config(fake, store={"url": pg_url}, **config))
            started.append(process.start())
        return started[-count:]

    yield start
    for process in started:
        process.stop()


def client(proxy: ProxyProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.base_url, api_key=proxy.key, max_retries=0, timeout=60)


def stored(pg_url: str, chatgpt_account_id: str) -> dict[str, Any]:
    with psycopg.connect(pg_url, row_factory=dict_row) as conn:
        row = conn.execute("SELECT * FROM accounts WHERE chatgpt_account_id = %s", [chatgpt_account_id]).fetchone()
    assert row is not None
    return row


def bearer_tokens(fake: FakeCodexThread, since: int = 0) -> list[str]:
    """The access tokens the backend was sent, in order (after the first ``since`` requests)."""
    return [r["headers"]["authorization"].removeprefix("Bearer ") for r in fake.requests("/codex/responses")[since:]]


def presented(fake: FakeCodexThread) -> list[str]:
    return [r["body"]["refresh_token"] for r in fake.requests("/oauth/token") if r["body"].get("grant_type") == "refresh_token"]


def statuses(proxy: ProxyProcess) -> dict[str, str]:
    return {a["chatgpt_account_id"]: a["status"] for a in proxy.accounts()}


class Watch:
    """Each instance's account list over a kept-alive connection, warmed up before the moment that
    is measured (a new client costs more than the propagation itself on a busy machine)."""

    def __init__(self, instances: list[ProxyProcess]) -> None:
        self.apis = [httpx.Client(base_url=p.origin, headers={"Authorization": f"Bearer {p.key}"}, timeout=10) for p in instances]
        for index in range(len(self.apis)):
            self.statuses(index)

    def statuses(self, index: int) -> dict[str, str]:
        return {a["chatgpt_account_id"]: a["status"] for a in self.apis[index].get("/auth/accounts").json()["accounts"]}

    def propagation(self, name: str, status: str, timeout: float = 5.0) -> list[float]:
        """Seconds from now until each instance shows account ``name`` with ``status``."""
        start = time.monotonic()
        took: dict[int, float] = {}
        while len(took) < len(self.apis):
            for index in range(len(self.apis)):
                if index not in took and self.statuses(index)[name] == status:
                    took[index] = time.monotonic() - start
            assert time.monotonic() - start < timeout, f"{len(took)} of {len(self.apis)} instances saw it within {timeout}s"
        return [took[i] for i in range(len(self.apis))]


# --- the pool, shared ------------------------------------------------------------------------------


def test_three_instances_under_load_share_one_pool(start_instances: StartInstances, fake: FakeCodexThread, pg_url: str) -> None:
    instances = start_instances(3)
    names = ("acc-p1", "acc-p2", "acc-p3")
    for index, name in enumerate(names):
        add(instances[index], name)  # each added on another instance
    for proxy in instances:  # every dashboard shows the whole pool, however it was built
        wait_for(lambda p=proxy: sorted(statuses(p)) == sorted(names), timeout=5, what="the whole pool on every instance")

    answers: list[str] = []
    failures: list[BaseException] = []

    def load(proxy: ProxyProcess, worker: int) -> None:
        sdk = client(proxy)
        for turn in range(8):
            try:
                answers.append(chat(sdk, f"load {proxy.port} {worker} {turn}"))
            except BaseException as exc:  # reported below, with the others
                failures.append(exc)

    threads = [threading.Thread(target=load, args=(proxy, w)) for proxy in instances for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures, failures[:3]
    assert len(answers) == 3 * 4 * 8 and all(a.startswith("You said: load ") for a in answers)
    spread = Counter(served(fake))
    assert set(spread) == set(names) and min(spread.values()) >= 10, spread  # every instance used the whole pool

    for proxy in instances:  # and every dashboard counts everyone's requests
        def counted(p: ProxyProcess = proxy) -> dict[str, Any] | None:
            totals = p.api("GET", "/admin/usage-stats/summary").json()["totals"]
            return totals if totals["requests"] == 96 else None

        totals = wait_for(counted, timeout=10, what="every instance's request log rows")
        assert totals["succeeded"] == 96
        logs = proxy.api("GET", "/admin/logs?limit=200").json()
        assert logs["total"] == 96


def test_one_refresh_at_a_time_and_every_instance_uses_the_new_token(start_instances: StartInstances, fake: FakeCodexThread,
                                                                     pg_url: str) -> None:  # fmt: skip
    fake.configure(token_delay_ms=1500)  # a slow token endpoint: the others find the refresh under way
    instances = start_instances(3, auth=REFRESH_NOW)
    first = add(instances[0], "acc-rot")
    original = stored(pg_url, "acc-rot")
    for proxy in instances:  # each one sees the account, and each one finds its token due for refresh
        wait_for(lambda p=proxy: "acc-rot" in statuses(p), timeout=5, what="the account on every instance")
    renewed = wait_for(lambda: (r := stored(pg_url, "acc-rot"))["refresh_token"] != original["refresh_token"] and r,
                       timeout=15, what="the refresh")  # fmt: skip
    time.sleep(3)  # room for a second refresh, were the lock not held across instances
    assert fake.refresh_count("acc-rot") == 1
    assert presented(fake) == [original["refresh_token"]]
    after = stored(pg_url, "acc-rot")
    assert after["refresh_token"] == renewed["refresh_token"] and after["refresh_started_at"] is None

    before = len(fake.requests("/codex/responses"))
    for index, proxy in enumerate(instances):
        assert chat(client(proxy), f"new token {index}") == f"You said: new token {index}"
    assert bearer_tokens(fake, before) == [renewed["access_token"]] * 3  # every instance on the new token
    assert account(instances[2], "acc-rot")["id"] == first["id"]


@pytest.mark.parametrize("phase", ["before", "after"])
def test_kill9_in_the_middle_of_a_refresh_loses_no_token(start_instances: StartInstances, fake: FakeCodexThread,
                                                         pg_url: str, phase: str) -> None:  # fmt: skip
    """The instance holding the refresh dies while the token endpoint holds its request. "before":
    the server had not acted (the dropped connection cancels it). "after": it had rotated the token
    and only its answer was late; Auth0's reuse interval lets the same token be presented again."""
    fake.configure(token_delay_ms=4000, token_delay_phase=phase, refresh_reuse_interval_seconds=60 if phase == "after" else 0)
    instances = start_instances(3, auth=REFRESH_NOW)
    add(instances[0], "acc-kill")
    marked = wait_for(lambda: (r := stored(pg_url, "acc-kill"))["refresh_started_at"] and r, timeout=10, what="the marker")
    in_flight = marked["refresh_token"]
    wait_for(lambda: fake.refresh_count("acc-kill") == 1, what="the request to reach the server")
    holder = int(marked["refresh_owner"].split(":")[0])
    (victim,) = [p for p in instances if p.pid == holder]
    victim.kill9()
    survivors = [p for p in instances if p is not victim]

    settled = wait_for(lambda: (r := stored(pg_url, "acc-kill"))["refresh_token"] != in_flight and r["refresh_started_at"] is None and r,
                       timeout=20, what="a survivor to finish the refresh")  # fmt: skip
    assert settled["refresh_error"] is None
    assert presented(fake) == [in_flight, in_flight]  # the survivor re-presented exactly the token in flight
    before = len(fake.requests("/codex/responses"))
    for index, proxy in enumerate(survivors):
        assert chat(client(proxy), f"after the kill {index}") == f"You said: after the kill {index}"
    assert bearer_tokens(fake, before) == [settled["access_token"]] * 2
    forced = survivors[1].api("POST", f"/auth/accounts/{account(survivors[1], 'acc-kill')['id']}/refresh")
    assert forced.status_code == 200, forced.text  # the stored refresh token is alive
    assert presented(fake)[-1] == settled["refresh_token"]


# --- what one instance learns steers the others ----------------------------------------------------------


@pytest.mark.parametrize("fault, status", [
    (sc.usage_limit_429(resets_in=900), "rate_limited"),
    (sc.ban_403(), "banned"),
    (sc.token_expired_401(), "expired"),
])  # fmt: skip
def test_a_limit_seen_by_one_instance_steers_the_others(start_instances: StartInstances, fake: FakeCodexThread,
                                                        fault: dict[str, Any], status: str) -> None:  # fmt: skip
    instances = start_instances(3)
    add(instances[0], "acc-hit", refresh=False)
    add(instances[0], "acc-spare", refresh=False)
    for proxy in instances:
        wait_for(lambda p=proxy: len(statuses(p)) == 2, timeout=5, what="both accounts on every instance")
    others = Watch(instances[1:])
    fake.fault("acc-hit", fault)
    first = client(instances[0])
    while "acc-hit" not in served(fake):  # least_used: the second turn at the latest lands on it
        assert chat(first, "find it").startswith("You said")
    assert statuses(instances[0])["acc-hit"] == status
    assert max(others.propagation("acc-hit", status)) < 1.0

    before = len(served(fake))
    for proxy in instances[1:]:
        sdk = client(proxy)
        for turn in range(3):
            assert chat(sdk, f"steered {turn}") == f"You said: steered {turn}"
    assert served(fake)[before:] == ["acc-spare"] * 6  # nobody tried it again


def test_session_affinity_holds_whichever_instance_a_turn_reaches(start_instances: StartInstances, fake: FakeCodexThread) -> None:
    instances = start_instances(3)
    for index, name in enumerate(("acc-s1", "acc-s2", "acc-s3")):
        add(instances[index], name)
    for proxy in instances:
        wait_for(lambda p=proxy: len(statuses(p)) == 3, timeout=5, what="the pool on every instance")
    clients = [client(p) for p in instances]
    homes: dict[int, set[str | None]] = {}
    for turn in range(3):
        for conversation in range(6):
            sdk = clients[(conversation + turn) % 3]  # each turn of a conversation on the next instance
            before = len(served(fake))
            sdk.chat.completions.create(model="gpt-5.4", user=f"conversation-{conversation}",
                                        messages=[{"role": "user", "content": f"turn {turn}"}])  # fmt: skip
            homes.setdefault(conversation, set()).update(served(fake)[before:])
    assert all(len(accounts) == 1 for accounts in homes.values()), homes
    assert len(set().union(*homes.values())) >= 2  # the conversations did not simply all share one account


def test_the_store_url_from_the_environment_and_a_restart_keep_the_pool(start_instances: StartInstances,
                                                                        fake: FakeCodexThread, pg_url: str) -> None:  # fmt: skip
    (only,) = start_instances(1)  # told by CODEX_PROXY_STORE_URL alone
    assert "store" not in only.config
    add(only, "acc-env")
    assert stored(pg_url, "acc-env")["status"] == "active"
    assert not (only.data_dir / "codex-proxy.db").exists()  # nothing went to SQLite
    only.kill9()
    only.start()
    assert statuses(only) == {"acc-env": "active"}


# --- client keys, shared ---------------------------------------------------------------------------------


def test_a_client_key_made_on_one_instance_serves_and_spends_on_both(start_instances: StartInstances, fake: FakeCodexThread) -> None:
    first, second = start_instances(2)
    add(first, "acc-key")
    wait_for(lambda: "acc-key" in statuses(second), timeout=5, what="the account on both instances")
    made = first.api("POST", "/admin/keys", json={"label": "shared", "budget": {"limit": 2000, "unit": "tokens", "period": "total"}})
    assert made.status_code == 201, made.text
    key_id, secret = made.json()["key"]["id"], made.json()["api_key"]
    sdks = [openai.OpenAI(base_url=p.base_url, api_key=secret, max_retries=0, timeout=60) for p in (first, second)]

    def key_state(proxy: ProxyProcess) -> dict[str, Any]:
        return proxy.api("GET", f"/admin/keys/{key_id}").json().get("key") or {}

    wait_for(lambda: key_state(second), timeout=1.0, what="the key on the second instance")
    fake.script({"usage": {"input_tokens": 1000, "output_tokens": 500}}, {"usage": {"input_tokens": 1000, "output_tokens": 500}})
    assert chat(sdks[0], "first") == "You said: first"  # 1500 of 2000
    wait_for(lambda: key_state(second)["spent"]["tokens"] == 1500, timeout=1.5, what="the first's spending on the second")
    assert chat(sdks[1], "second") == "You said: second"  # let in at 1500: 3000 now, spent through both
    for proxy in (first, second):
        wait_for(lambda p=proxy: key_state(p)["status"] == "over_budget", timeout=1.5, what="the key over budget on both")
    for sdk in sdks:
        with pytest.raises(openai.RateLimitError):
            chat(sdk, "third")

    assert first.api("DELETE", f"/admin/keys/{key_id}").status_code == 200
    wait_for(lambda: second.api("GET", f"/admin/keys/{key_id}").status_code == 404, timeout=1.0, what="the key gone on the second")
    with pytest.raises(openai.AuthenticationError):
        chat(sdks[1], "gone")
