"""Rate-limit parsing (headers and /wham/usage bodies), warnings and the pooled usage view."""

from __future__ import annotations

import pytest

from codex_fake.state import AccountUsage
from core.accounts.quota import (
    Member,
    Quota,
    Window,
    client_plan_type,
    event_headers,
    parse_headers,
    parse_rate_limit_event,
    parse_usage_body,
    pooled,
    usage_body,
    warnings_for,
)

NOW = 1_767_225_600.0


def test_headers_with_reset_at() -> None:
    quota = parse_headers({
        "x-codex-primary-used-percent": "12.5", "x-codex-primary-window-minutes": "300",
        "x-codex-primary-reset-at": str(int(NOW) + 600),
        "x-codex-secondary-used-percent": "40", "x-codex-secondary-window-minutes": "10080",
        "x-codex-secondary-reset-at": str(int(NOW) + 86400),
        "x-codex-credits-has-credits": "true", "x-codex-credits-unlimited": "0", "x-codex-credits-balance": "12.50",
        "content-type": "text/event-stream",
    }, NOW)  # fmt: skip
    assert quota is not None
    assert quota.primary == Window(12.5, 300, NOW + 600)
    assert quota.secondary == Window(40.0, 10080, NOW + 86400)
    assert quota.credits == {"has_credits": True, "unlimited": False, "balance": "12.50"}
    assert quota.short() is quota.primary and quota.long() is quota.secondary
    assert quota.used(NOW) == 40.0 and quota.exhausted_until(NOW) is None


def test_older_reset_after_seconds_spelling() -> None:
    quota = parse_headers({"x-codex-primary-used-percent": "100", "x-codex-primary-reset-after-seconds": "90"}, NOW)
    assert quota is not None and quota.primary is not None
    assert quota.primary.reset_at == NOW + 90
    assert quota.exhausted_until(NOW) == NOW + 90
    assert quota.exhausted_until(NOW + 91) is None  # its window reset: usable again


def test_window_length_not_the_word_primary_decides_short_and_long() -> None:
    quota = parse_headers({
        "x-codex-primary-used-percent": "5", "x-codex-primary-window-minutes": "10080",
        "x-codex-secondary-used-percent": "70", "x-codex-secondary-window-minutes": "300",
    }, NOW)  # fmt: skip
    assert quota is not None
    assert quota.short() == quota.secondary and quota.long() == quota.primary


def test_extra_metered_limits_and_limit_families() -> None:
    quota = parse_headers({
        "x-codex-secondary-used-percent": "20",  # the codex limit's secondary window
        "x-codex-secondary-primary-used-percent": "80",  # limit "codex_secondary", primary window
        "x-codex-bengalfox-primary-used-percent": "30", "x-codex-bengalfox-limit-name": "gpt-5.3-codex-spark",
    }, NOW)  # fmt: skip
    assert quota is not None
    assert quota.primary is None and quota.secondary == Window(20.0)
    assert quota.extra["codex_secondary"]["primary"] == Window(80.0)
    assert quota.extra["codex_bengalfox"]["name"] == "gpt-5.3-codex-spark"
    assert quota.exhausted_until(NOW) is None  # extra limits do not block the account


def test_no_rate_limit_headers_and_junk_values() -> None:
    assert parse_headers({"content-type": "text/event-stream"}, NOW) is None
    quota = parse_headers({"x-codex-primary-used-percent": "lots", "x-codex-credits-has-credits": "maybe",
                           "x-codex-secondary-used-percent": "nan"}, NOW)  # fmt: skip
    assert quota is None


def test_fake_backend_headers_round_trip() -> None:
    usage = AccountUsage(primary_used=100.0, primary_reset_at=int(NOW) + 300, secondary_used=50.0, secondary_reset_at=int(NOW) + 9000)
    quota = parse_headers(usage.headers(), NOW)
    assert quota is not None and quota.exhausted_until(NOW) == NOW + 300
    body_quota = parse_usage_body(usage.wham("pro", NOW), NOW)
    assert body_quota is not None
    assert body_quota.primary == Window(100.0, 300, NOW + 300) and body_quota.plan_type == "pro"


def test_usage_body_parse() -> None:
    body = {
        "plan_type": "pro",
        "rate_limit": {"allowed": True, "limit_reached": False,
                       "primary_window": {"used_percent": 8, "limit_window_seconds": 17940, "reset_after_seconds": 6625},
                       "secondary_window": {"used_percent": 15, "limit_window_seconds": 604740, "reset_at": NOW + 54618}},
        "additional_rate_limits": [{"limit_name": "Spark", "metered_feature": "codex_bengalfox",
                                    "rate_limit": {"primary_window": {"used_percent": 3, "limit_window_seconds": 18000}}}],
        "credits": {"has_credits": False, "unlimited": False, "balance": "0", "approx_local_messages": [0, 0]},
    }  # fmt: skip
    quota = parse_usage_body(body, NOW)
    assert quota is not None
    assert quota.primary == Window(8.0, 299, NOW + 6625)
    assert quota.secondary == Window(15.0, 10079, NOW + 54618)
    assert quota.extra["codex_bengalfox"]["primary"].used_percent == 3
    assert quota.credits == {"has_credits": False, "unlimited": False, "balance": "0"}
    assert parse_usage_body({"detail": "nope"}, NOW) is None


def test_snapshot_survives_json_and_merges() -> None:
    headers = parse_headers({"x-codex-primary-used-percent": "10", "x-codex-primary-window-minutes": "300"}, NOW)
    body = parse_usage_body({"plan_type": "plus", "rate_limit": {"primary_window": {"used_percent": 5}}}, NOW - 10)
    assert headers is not None and body is not None
    merged = body.merged(headers)
    assert merged.primary == Window(10.0, 300) and merged.plan_type == "plus"
    assert Quota.from_dict(merged.to_dict()) == merged


def test_warnings_per_window_list_or_dict() -> None:
    quota = Quota(NOW, Window(96.0, 300, NOW + 100), Window(81.0, 10080, NOW + 1000))
    found = warnings_for(quota, [80, 95], NOW)
    assert [(w["window"], w["threshold"], w["level"]) for w in found] == [("primary", 95.0, "critical"), ("secondary", 80.0, "warning")]
    only_secondary = warnings_for(quota, {"secondary": [50]}, NOW)
    assert [(w["window"], w["level"]) for w in only_secondary] == [("secondary", "critical")]
    assert warnings_for(quota, [80], NOW + 2000) == []  # both windows have reset


def _member(short: float, long: float = 0.0, reset: float = 600, blocked: float | None = None, plan: str = "plus") -> Member:
    return Member(Quota(NOW, Window(short, 300, NOW + reset), Window(long, 10080, NOW + 86400)), blocked, plan)


def test_pooled_mean_never_reads_full_while_one_account_serves() -> None:
    view = pooled([_member(100.0, reset=900), _member(100.0, reset=300), _member(0.0)], NOW)
    assert not view["limit_reached"] and view["available"] == 1
    assert view["short"]["used_percent"] == pytest.approx(66.67, abs=0.01)
    assert view["short"]["reset_at"] == NOW + 300
    nearly = pooled([_member(100.0), _member(99.9)], NOW)
    assert nearly["short"]["used_percent"] == 99.0 and not nearly["limit_reached"]


def test_pooled_exhausted_reports_when_the_first_account_returns() -> None:
    view = pooled([_member(100.0, reset=900), _member(30.0, blocked=NOW + 120), _member(0.0, long=100.0)], NOW)
    assert view["limit_reached"] and view["available"] == 0
    assert view["short"]["used_percent"] == 100.0
    assert view["short"]["reset_at"] == NOW + 120
    body = usage_body(view, NOW)
    assert body["rate_limit"]["allowed"] is False and body["rate_limit_reached_type"] == "primary"
    assert body["rate_limit"]["primary_window"]["reset_after_seconds"] == 120


def test_pooled_unknown_accounts_and_empty_pool() -> None:
    view = pooled([Member(None, plan="pro"), Member(None, plan="free")], NOW)
    assert view["short"]["used_percent"] == 0 and view["plan_type"] == "pro"
    assert not pooled([], NOW)["limit_reached"]


def test_usage_body_matches_what_the_official_client_deserializes() -> None:
    """codex-rs' RateLimitStatusPayload: plan_type is a closed enum; every window field is an i32."""
    view = pooled([_member(33.3, long=12.4, plan="prolite"), _member(0.0, plan="team")], NOW)
    body = usage_body(view, NOW)
    assert body["plan_type"] in {"guest", "free", "go", "plus", "pro", "free_workspace", "team", "business",
                                 "education", "quorum", "k12", "enterprise", "edu"}  # fmt: skip
    assert body["plan_type"] == "pro"  # prolite maps to the enum's pro
    for name in ("primary_window", "secondary_window"):
        window = body["rate_limit"][name]
        assert set(window) == {"used_percent", "limit_window_seconds", "reset_after_seconds", "reset_at"}
        assert all(type(v) is int and -(2**31) <= v < 2**31 for v in window.values()), window
    assert body["rate_limit"]["primary_window"]["used_percent"] == 17
    assert isinstance(body["credits"]["has_credits"], bool) and isinstance(body["credits"]["unlimited"], bool)


def test_client_plan_type_falls_back_to_plus() -> None:
    assert client_plan_type([None, "martian"]) == "plus"
    assert client_plan_type(["free", "edu_plus"]) == "edu"


def test_the_websocket_rate_limit_event_reads_like_the_headers() -> None:
    usage = AccountUsage(primary_used=42.0, primary_reset_at=int(NOW) + 600, secondary_used=18.5, secondary_reset_at=int(NOW) + 9000,
                         has_credits=True, balance="12.5")  # fmt: skip
    event = usage.ws_event("pro")
    from_event = parse_rate_limit_event(event, NOW)
    from_headers = parse_headers(usage.headers(), NOW)
    assert from_event is not None and from_headers is not None
    assert (from_event.primary, from_event.secondary, from_event.credits) == (from_headers.primary, from_headers.secondary, from_headers.credits)
    assert from_event.plan_type == "pro"
    assert event_headers(event)["x-codex-primary-used-percent"] == "42.0"


def test_rate_limit_events_of_other_limits() -> None:
    spark = {"type": "codex.rate_limits", "metered_limit_name": "codex_bengalfox",
             "rate_limits": {"primary": {"used_percent": 5, "window_minutes": 300, "reset_at": NOW + 60}, "secondary": None}}
    quota = parse_rate_limit_event(spark, NOW)
    assert quota is not None and quota.primary is None and quota.extra["codex_bengalfox"]["primary"].used_percent == 5
    review = {"type": "codex.rate_limits", "limit_name": "code_review", "rate_limits": {"primary": {"used_percent": 99}}}
    assert parse_rate_limit_event(review, NOW) is None  # code review windows are not the account's turn quota
    assert parse_rate_limit_event({"type": "codex.rate_limits"}, NOW) is None
