"""Which of the accounts able to serve a request gets it (``auth.rotation_strategy``).

* ``least_used`` (default): the account with the fewest requests in flight, then the lowest quota
  use (its tighter window), then the fewest requests served since start, then the longest idle.
* ``round_robin``: each account in turn, in the order they were added.
* ``sticky``: the same account for as long as it can serve; then the least used one, which sticks.

Pure: the pool hands in a snapshot of its candidates and the rotation state to advance.
"""

from __future__ import annotations

from dataclasses import dataclass

STRATEGIES = ("least_used", "round_robin", "sticky")


@dataclass(frozen=True, slots=True)
class Candidate:
    id: str
    order: tuple[float, str]  # (added_at, id): the stable rotation order
    in_flight: int = 0
    used_percent: float = 0.0  # the binding quota window; 0 when unknown
    served: int = 0
    last_used_at: float = 0.0


@dataclass(slots=True)
class RotationState:
    last: Candidate | None = None


def _least_used_key(candidate: Candidate) -> tuple[int, int, int, float, tuple[float, str]]:
    return (candidate.in_flight, round(candidate.used_percent), candidate.served, candidate.last_used_at, candidate.order)


def pick(strategy: str, candidates: list[Candidate], state: RotationState) -> Candidate:
    """Choose one of ``candidates`` (non-empty) and remember it in ``state``."""
    if strategy == "round_robin":
        ordered = sorted(candidates, key=lambda c: c.order)
        last = state.last.order if state.last is not None else None
        chosen = next((c for c in ordered if last is None or c.order > last), ordered[0])
    elif strategy == "sticky" and state.last is not None and any(c.id == state.last.id for c in candidates):
        chosen = next(c for c in candidates if c.id == state.last.id)
    else:
        chosen = min(candidates, key=_least_used_key)
    state.last = chosen
    return chosen
