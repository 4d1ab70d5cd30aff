"""Open WebSockets per owner (an account), each leased to one turn at a time and kept between turns.

The backend serves one response at a time per socket and resolves ``previous_response_id`` only on
the socket that produced the response, so a socket remembers which response it ``holds`` and the
conversation it last served. Idle sockets are pinged every ``PING_SECONDS`` (a connection that
died quietly is found before a turn is sent into it), closed when idle longer than
``idle_seconds`` or older than ``max_age_seconds`` (the backend ends a connection after about an
hour), and beyond ``idle_per_owner`` per owner idle ones are closed after ``TRIM_SECONDS``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from core.upstream.websocket import UpstreamSocket

PING_SECONDS = 25.0  # an idle socket silent this long gets a ping
PONG_SECONDS = 10.0  # no answer within this long: the connection is dead
# Idle sockets beyond ``idle_per_owner`` are closed only once idle this long: under load, turns end
# in bursts and new ones follow at once, and closing the surplus of a burst would mean a handshake
# for each of them a moment later.
TRIM_SECONDS = 5.0


@dataclass(slots=True, eq=False)
class Pooled:
    """A socket as the pool sees it."""

    socket: UpstreamSocket
    owner: str
    conversation: str | None = None  # the conversation of its last turn
    holds: str | None = None  # the last response completed on it, for previous_response_id
    busy: bool = True
    idle_since: float = 0.0
    pinged_at: float = 0.0


class SocketPool:
    def __init__(self, idle_per_owner: int, idle_seconds: float, max_age_seconds: float) -> None:
        self.idle_per_owner = idle_per_owner
        self.idle_seconds = idle_seconds
        self.max_age_seconds = max_age_seconds
        self._owners: dict[str, list[Pooled]] = {}  # every open socket, busy or idle
        self._sweeper: asyncio.TimerHandle | None = None

    def take(self, owner: str, conversation: str | None = None, holding: str | None = None) -> Pooled | None:
        """An idle socket of ``owner``, leased (busy) until ``give_back``/``discard``. ``holding``:
        only the socket holding that response will do. Otherwise one of the same conversation,
        else one that holds no response, else the most recently used."""
        sockets = self._owners.get(owner)
        if not sockets:
            return None
        now = time.monotonic()
        best: Pooled | None = None
        best_rank = -1
        for pooled in list(sockets):
            if pooled.busy:
                continue
            if not self._usable(pooled, now):
                self.discard(pooled, "retired")
                continue
            if holding is not None:
                if pooled.holds == holding:
                    best = pooled
                    break
                continue
            rank = 3 if conversation is not None and pooled.conversation == conversation else 2 if pooled.holds is None else 1
            if rank > best_rank or (rank == best_rank and best is not None and pooled.idle_since > best.idle_since):
                best, best_rank = pooled, rank
        if best is not None:
            best.busy = True
            best.socket.discard_messages()  # stray frames from before the lease are not this turn's
            if conversation is not None:
                best.conversation = conversation
        return best

    def add(self, owner: str, socket: UpstreamSocket, conversation: str | None = None) -> Pooled:
        """A socket just opened for a turn, leased to it."""
        pooled = Pooled(socket, owner, conversation)
        self._owners.setdefault(owner, []).append(pooled)
        self._arm()
        return pooled

    def give_back(self, pooled: Pooled, holds: str | None = None) -> None:
        """The turn is over and the socket is fit for another: idle again, holding ``holds``."""
        now = time.monotonic()
        pooled.busy = False
        pooled.holds = holds
        pooled.idle_since = now
        pooled.pinged_at = 0.0
        if not self._usable(pooled, now):
            self.discard(pooled, "retired")
            return
        self._trim(pooled.owner, now)

    def _trim(self, owner: str, now: float) -> None:
        """Close the longest-idle sockets of ``owner`` beyond ``idle_per_owner`` (once idle a while)."""
        idle = sorted((p for p in self._owners.get(owner, ()) if not p.busy), key=lambda p: p.idle_since)
        for extra in idle[: max(0, len(idle) - self.idle_per_owner)]:
            if now - extra.idle_since >= TRIM_SECONDS:
                self.discard(extra, "too many idle sockets")

    def discard(self, pooled: Pooled, reason: str = "closed") -> None:
        pooled.socket.close(reason)
        sockets = self._owners.get(pooled.owner)
        if sockets is not None and pooled in sockets:
            sockets.remove(pooled)
            if not sockets:
                del self._owners[pooled.owner]

    def drop(self, owner: str, reason: str = "account changed") -> None:
        """Close every idle socket of ``owner``; busy ones close when their turn gives them back."""
        for pooled in [p for p in self._owners.get(owner, ()) if not p.busy]:
            self.discard(pooled, reason)
        for pooled in self._owners.get(owner, ()):
            pooled.idle_since = -1.0  # retired at give-back (see _usable)

    def owners(self) -> list[str]:
        return list(self._owners)

    def close(self) -> None:
        for sockets in list(self._owners.values()):
            for pooled in list(sockets):
                self.discard(pooled, "shutting down")
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    def stats(self) -> dict[str, int]:
        sockets = [p for owned in self._owners.values() for p in owned]
        return {"open": len(sockets), "busy": sum(p.busy for p in sockets), "owners": len(self._owners)}

    # -- housekeeping ----------------------------------------------------------------------------------

    def _usable(self, pooled: Pooled, now: float) -> bool:
        sock = pooled.socket
        if sock.closed or pooled.idle_since < 0:
            return False
        if now - sock.opened_at > self.max_age_seconds:
            return False
        return pooled.busy or now - pooled.idle_since <= self.idle_seconds

    def _arm(self) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(PING_SECONDS / 2, self._sweep)

    def _sweep(self) -> None:
        """Retire what is too old or idle too long, ping what has been quiet, drop what did not answer."""
        self._sweeper = None
        now = time.monotonic()
        for owner in list(self._owners):
            self._trim(owner, now)
        for sockets in list(self._owners.values()):
            for pooled in list(sockets):
                if pooled.busy:
                    continue
                sock = pooled.socket
                if not self._usable(pooled, now):
                    self.discard(pooled, "retired")
                elif pooled.pinged_at and sock.last_active < pooled.pinged_at and now - pooled.pinged_at > PONG_SECONDS:
                    self.discard(pooled, "no answer to a ping")
                elif now - sock.last_active > PING_SECONDS and (not pooled.pinged_at or sock.last_active >= pooled.pinged_at):
                    if sock.ping():
                        pooled.pinged_at = now
        if self._owners:
            self._arm()
