"""The proxy pool on its own: what users may type for a proxy, its URL and what is shown of it,
the four modes, automatic picks and moves, accounts gated by their proxy, and persistence in a
real SQLite file (tests/e2e/test_proxy_pool.py runs the same against real proxy servers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from codex_fake import mint_access_token
from core.accounts.claims import parse_access_token
from core.accounts.model import Account
from core.accounts.pool import AccountPool
from core.accounts.proxies import Proxy, ProxyInputError, exit_ip_of, new_proxy, proxy_fields
from core.accounts.proxy_pool import ProxyInUse, ProxyPool
from core.codex.errors import ROTATE, UpstreamError
from core.config import ConfigStore
from core.store.accounts import AccountStore
from core.store.affinity import AffinityStore
from core.store.db import Database
from core.store.proxies import ProxyStore

# --- what users type ------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("http://10.0.0.1:3128", ("http", "10.0.0.1", 3128, None, None)),
    ("https://proxy.example:443", ("https", "proxy.example", 443, None, None)),
    ("socks5://u:p@h:1080", ("socks5", "h", 1080, "u", "p")),
    ("socks5h://u%40x:p%3Aq%2F@h:1080", ("socks5", "h", 1080, "u@x", "p:q/")),
    ("SOCKS://h:1", ("socks5", "h", 1, None, None)),
    ("203.0.113.7:8080", ("http", "203.0.113.7", 8080, None, None)),
    ("203.0.113.7:8080:alice:s3cret", ("http", "203.0.113.7", 8080, "alice", "s3cret")),
    ("http://[2001:db8::1]:3128", ("http", "2001:db8::1", 3128, None, None)),
])  # fmt: skip
def test_a_proxy_from_a_url_or_a_list_line(text: str, expected: tuple[object, ...]) -> None:
    values = proxy_fields(text)
    assert (values["scheme"], values["host"], values["port"], values["username"], values["password"]) == expected


@pytest.mark.parametrize(("entry", "message"), [
    ("ftp://h:21", "scheme"),
    ("http://h", "needs a host and a port"),
    ("http://h:99999", "port"),
    ("http://h:80/path", "nothing after the port"),
    ("just-a-name", "not a proxy"),
    ({"host": "h", "port": 0}, "port"),
    ({"host": "h", "port": 1, "password": "p"}, "needs a user name"),
    ({"host": "bad host", "port": 1}, "host"),
    ({"host": "h", "port": 1, "enabled": "yes"}, "enabled"),
    ({"host": "h", "port": 1, "username": "a\nb"}, "single line"),
    (42, "URL or an object"),
])  # fmt: skip
def test_what_cannot_be_a_proxy_says_why(entry: object, message: str) -> None:
    with pytest.raises(ProxyInputError, match=message):
        proxy_fields(entry)


def test_the_url_for_libcurl_and_what_the_api_shows() -> None:
    proxy = new_proxy({"scheme": "socks5", "host": "127.0.0.1", "port": 1080, "username": "alice", "password": "p@ss:w/rd", "name": "home"})
    assert proxy.url() == "socks5h://alice:p%40ss%3Aw%2Frd@127.0.0.1:1080"  # names resolved by the proxy too
    shown = proxy.public()
    assert "p@ss" not in str(shown) and "alice" not in str(shown)
    assert shown["username"] == "al•••" and shown["has_password"] is True
    assert shown["url"] == "socks5://al•••:••••••@127.0.0.1:1080"
    assert proxy.export(secrets_too=False) == {"name": "home", "scheme": "socks5", "host": "127.0.0.1", "port": 1080,
                                               "enabled": True, "credentials_omitted": True}  # fmt: skip
    assert proxy.export(secrets_too=True)["password"] == "p@ss:w/rd"
    assert new_proxy("http://[::1]:3128").url() == "http://[::1]:3128"


def test_the_exit_ip_from_what_ip_services_answer() -> None:
    assert exit_ip_of(b'{"ip":"203.0.113.9"}') == "203.0.113.9"
    assert exit_ip_of(b'{"origin": "198.51.100.1, 10.0.0.1"}') == "198.51.100.1"
    assert exit_ip_of(b"2001:db8::7\n") == "2001:db8::7"
    assert exit_ip_of(b"<html>captive portal</html>") is None


# --- the pool ---------------------------------------------------------------------------------------


class World:
    """A real database with accounts, the account pool and the proxy pool over it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.db = Database(folder / "codex-proxy.db")
        self.accounts = AccountStore(self.db)
        self.config = ConfigStore(folder, environ={})
        self.pool = AccountPool(self.accounts, AffinityStore(self.db), self.config)
        self.proxies = ProxyPool(ProxyStore(self.db))
        self.proxies.load()
        self.pool.gate = self.proxies.blocked

    def account(self, name: str) -> Account:
        token = mint_access_token(account_id=name, plan="plus", email=f"{name}@example.com")
        account = Account.from_tokens(parse_access_token(token), token)
        self.accounts.upsert(account)
        return self.pool.put(account)

    def proxy(self, url: str, status: str | None = "ok", latency_ms: float = 50.0) -> Proxy:
        _, ids = self.proxies.add([url])
        if status is not None:
            self.proxies.record_check(ids[0], None if status == "ok" else "refused", latency_ms, "203.0.113.1")
        proxy = self.proxies.get(ids[0])
        assert proxy is not None
        return proxy

    def close(self) -> None:
        self.proxies.close()
        self.pool.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.close()


def test_each_mode_routes_the_account(world: World) -> None:
    a, b, c = world.account("a"), world.account("b"), world.account("c")
    pinned = world.proxy("http://u:p@10.0.0.1:3128")
    world.proxies.assign([b.id], "direct")
    world.proxies.assign([c.id], "specific", pinned.id)
    assert world.proxies.route(a) is None  # the global default: the transport's tls.proxy_url
    assert world.proxies.route(b) == ""  # direct, whatever tls.proxy_url says
    assert world.proxies.route(c) == "http://u:p@10.0.0.1:3128"
    world.proxies.assign([c.id], "default")
    assert world.proxies.route(c) is None and world.proxies.describe(c.id)["mode"] == "default"


def test_automatic_picks_the_least_used_healthy_proxy_and_keeps_it(world: World) -> None:
    accounts = [world.account(f"acc{i}") for i in range(4)]
    slow, fast = world.proxy("http://10.0.0.1:1", latency_ms=300), world.proxy("http://10.0.0.2:2", latency_ms=20)
    world.proxy("http://10.0.0.3:3", status="unreachable")
    world.proxy("http://10.0.0.4:4", status=None)  # never checked: not known to be healthy
    picks = world.proxies.assign([a.id for a in accounts], "automatic")
    assert [proxy_id for _, proxy_id in picks.values()] == [fast.id, slow.id, fast.id, slow.id]
    world.proxies.record_check(slow.id, None, 5, "203.0.113.1")  # now the faster one: nobody moves
    assert world.proxies.assign([accounts[0].id], "automatic")[accounts[0].id] == ("automatic", fast.id)
    assert world.proxies.describe(accounts[0].id)["proxy_id"] == fast.id


def test_an_unreachable_proxy_moves_automatic_accounts_and_stops_pinned_ones(world: World) -> None:
    floating, pinned = world.account("floating"), world.account("pinned")
    first = world.proxy("http://10.0.0.1:1")
    world.proxies.assign([floating.id], "automatic")
    world.proxies.assign([pinned.id], "specific", first.id)
    second = world.proxy("socks5://10.0.0.2:2")
    assert world.proxies.describe(floating.id)["proxy_id"] == first.id

    world.proxies.record_check(first.id, "Failed to connect to 10.0.0.1 port 1", None, None)
    assert world.proxies.describe(floating.id)["proxy_id"] == second.id
    assert world.proxies.route(floating).startswith("socks5h://10.0.0.2")
    assert world.proxies.blocked(pinned.id) == f"its proxy {first.label} is unreachable (Failed to connect to 10.0.0.1 port 1)"
    with pytest.raises(UpstreamError) as refused:
        world.proxies.route(pinned)
    assert (refused.value.status, refused.value.code, refused.value.action) == (503, "proxy_unavailable", ROTATE)
    assert world.pool.choose("gpt-5.4") is floating  # the pinned one is not offered
    world.pool.release(floating)

    world.proxies.record_check(second.id, "timed out", None, None)
    assert "no proxy in the pool is healthy" in (world.proxies.blocked(floating.id) or "")
    assert world.pool.choose("gpt-5.4") is None
    assert world.pool.availability("gpt-5.4").gated is not None

    world.proxies.record_check(first.id, None, 40, "203.0.113.1")  # back: both serve again
    assert world.proxies.blocked(pinned.id) is None and world.proxies.describe(floating.id)["proxy_id"] == first.id
    world.proxies.update(first.id, {"enabled": False})
    assert world.proxies.blocked(pinned.id) == f"its proxy {first.label} is disabled"
    assert world.proxies.describe(floating.id)["proxy_id"] is None  # nowhere to go


def test_a_pinned_proxy_cannot_be_deleted_an_automatic_one_can(world: World) -> None:
    floating, pinned = world.account("floating"), world.account("pinned")
    first, second = world.proxy("http://10.0.0.1:1"), world.proxy("http://10.0.0.2:2")
    world.proxies.assign([pinned.id], "specific", first.id)
    world.proxies.assign([floating.id], "automatic")
    assert world.proxies.describe(floating.id)["proxy_id"] == second.id
    with pytest.raises(ProxyInUse, match=pinned.id):
        world.proxies.remove([first.id, second.id])
    assert world.proxies.get(second.id) is not None  # nothing deleted
    assert world.proxies.remove([second.id]) == [second.id]
    assert world.proxies.describe(floating.id)["proxy_id"] == first.id
    with pytest.raises(ProxyInputError, match="no proxy"):
        world.proxies.assign([floating.id], "specific", second.id)
    with pytest.raises(ProxyInputError, match="mode must be"):
        world.proxies.assign([floating.id], "tor")


def test_importing_updates_what_is_there(world: World) -> None:
    world.proxy("socks5://alice:old@10.0.0.1:1080")
    result, _ = world.proxies.add(["socks5://alice:new@10.0.0.1:1080", "10.0.0.9:8080:bob:pw", "nonsense"])
    assert (result.added, result.updated, result.failed) == (1, 1, 1)
    assert result.errors[0]["index"] == 2
    exported = world.proxies.export(secrets_too=False)  # read back without credentials: still the same proxies
    result, _ = world.proxies.add(exported)
    assert (result.added, result.updated) == (0, 2)
    assert {p["host"]: p["has_password"] for p in world.proxies.public()} == {"10.0.0.1": True, "10.0.0.9": True}
    assert world.proxies.export(secrets_too=True)[0]["password"] == "new"


def test_editing_how_a_proxy_is_reached_forgets_its_health(world: World) -> None:
    proxy = world.proxy("http://u:secret@10.0.0.1:3128")
    renamed = world.proxies.update(proxy.id, {"name": "office"})
    assert (renamed.status, renamed.password) == ("ok", "secret")
    moved = world.proxies.update(proxy.id, {"url": "http://u@10.0.0.2:3128"})  # a URL shown masked comes back without it
    assert (moved.host, moved.password, moved.status, moved.exit_ip) == ("10.0.0.2", "secret", "unknown", None)
    cleared = world.proxies.update(proxy.id, {"password": None})
    assert cleared.password is None and cleared.username == "u"


def test_everything_survives_a_restart_and_goes_with_its_account(world: World) -> None:
    floating, pinned = world.account("floating"), world.account("pinned")
    proxy = world.proxy("http://10.0.0.1:1")
    world.proxies.assign([floating.id], "automatic")
    world.proxies.assign([pinned.id], "specific", proxy.id)
    assert world.proxies.flush()
    again = ProxyPool(ProxyStore(world.db))
    again.load()
    assert again.describe(floating.id) == world.proxies.describe(floating.id)
    assert again.get(proxy.id) == world.proxies.get(proxy.id)  # health included
    world.accounts.delete([pinned.id])
    assert set(ProxyStore(world.db).assignments()) == {floating.id}
    again.close()
