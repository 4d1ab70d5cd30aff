"""Where a libcurl multi handle's sockets are watched: an epoll set of our own (Linux), or the
loop's readers and writers (the portable fallback)."""

from __future__ import annotations

import asyncio
import select
from typing import Any

from curl_cffi.aio import get_selector

# libcurl's socket callback (what it wants watched) and curl_multi_socket_action (what happened).
POLL_IN, POLL_OUT, POLL_REMOVE = 1, 2, 4
CSELECT_IN, CSELECT_OUT, CSELECT_ERR = 1, 2, 4


class EpollSockets:
    """libcurl's sockets in an epoll set of our own; the loop watches the set's descriptor.

    ``epoll_ctl`` from C costs a few hundred instructions; asyncio's add_reader/remove_reader cost
    tens of thousands (selector keys, handles), and libcurl drops a kept-alive connection's
    socket from its watch list after every request and adds it back on the next. A descriptor
    closed by libcurl leaves the set by itself; the bookkeeping here tolerates that.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, act: Any) -> None:
        self._loop = loop
        self._epoll = select.epoll()
        self._mask: dict[int, int] = {}
        self._act = act
        loop.add_reader(self._epoll.fileno(), self._ready)

    def __len__(self) -> int:
        return len(self._mask)

    def set(self, fd: int, what: int) -> None:
        mask = (select.EPOLLIN if what & POLL_IN else 0) | (select.EPOLLOUT if what & POLL_OUT else 0)
        old = self._mask.get(fd)
        if old == mask:
            return
        try:
            if old is None:
                self._epoll.register(fd, mask)
            else:
                self._epoll.modify(fd, mask)
        except FileNotFoundError:  # closed and reopened under the same number since: new socket
            self._epoll.register(fd, mask)
        except FileExistsError:
            self._epoll.modify(fd, mask)
        self._mask[fd] = mask

    def remove(self, fd: int) -> None:
        if self._mask.pop(fd, None) is not None:
            try:
                self._epoll.unregister(fd)
            except OSError:
                pass  # already closed: the kernel dropped it

    def _ready(self) -> None:
        act = self._act
        for fd, events in self._epoll.poll(0):
            flags = 0
            if events & (select.EPOLLIN | select.EPOLLHUP):
                flags |= CSELECT_IN
            if events & select.EPOLLOUT:
                flags |= CSELECT_OUT
            if events & select.EPOLLERR:
                flags |= CSELECT_ERR
            act(fd, flags)

    def close(self) -> None:
        self._loop.remove_reader(self._epoll.fileno())
        self._epoll.close()
        self._mask.clear()


class LoopSockets:
    """The portable fallback (no epoll): each socket is a reader/writer of the loop (on Windows'
    proactor loop, of the selector thread curl_cffi runs beside it)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, act: Any) -> None:
        self._loop = get_selector(loop)
        self._mask: dict[int, int] = {}
        self._act = act

    def __len__(self) -> int:
        return len(self._mask)

    def set(self, fd: int, what: int) -> None:
        old = self._mask.get(fd, 0)
        changed = old ^ what
        if changed & POLL_IN:
            if what & POLL_IN:
                self._loop.add_reader(fd, self._act, fd, CSELECT_IN)
            else:
                self._loop.remove_reader(fd)
        if changed & POLL_OUT:
            if what & POLL_OUT:
                self._loop.add_writer(fd, self._act, fd, CSELECT_OUT)
            else:
                self._loop.remove_writer(fd)
        self._mask[fd] = what

    def remove(self, fd: int) -> None:
        if self._mask.pop(fd, None) is not None:
            self._loop.remove_reader(fd)
            self._loop.remove_writer(fd)

    def close(self) -> None:
        for fd in list(self._mask):
            self.remove(fd)


SOCKETS: Any = EpollSockets if hasattr(select, "epoll") else LoopSockets
