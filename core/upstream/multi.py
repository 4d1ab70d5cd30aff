"""One libcurl multi handle run by the asyncio loop: its sockets, its single timer, and the
"transfer done" messages it reports. :class:`core.upstream.driver.CurlDriver` is one (every HTTP
transfer); a WebSocket handshake runs in one of its own (core/upstream/websocket.py says why).
"""

from __future__ import annotations

import asyncio
from typing import Any

from curl_cffi import CurlMOpt, ffi, lib

from core.upstream.handles import TransferError
from core.upstream.sockets import POLL_REMOVE

_SOCKET_TIMEOUT = -1
_MSG_DONE = 1
_SOCKET_CB = "int(void *, int, int, void *, void *)"
_TIMER_CB = "int(void *, long, void *)"


class MultiLoop:
    """A multi handle, its sockets in ``sockets_type`` and its timer on the loop. Subclasses keep
    the transfers they added in ``_running`` (easy pointer → their object) and get each one back
    in ``_done`` when libcurl reports it finished."""

    def __init__(self, sockets_type: Any) -> None:
        self.loop = asyncio.get_running_loop()
        self._multi = lib.curl_multi_init()
        self._running: dict[Any, Any] = {}  # easy pointer → the subclass's object, for done messages
        self._sockets = sockets_type(self.loop, self._act)
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self._timer_at = 0.0  # when ``_timer`` fires (loop time)
        self._wanted_at: float | None = None  # libcurl's latest deadline (loop time), None: none
        self._starting = False  # inside curl_multi_add_handle: a due timer is run right after it
        self._due = False
        self._long = ffi.new("long *")
        self._still_running = ffi.new("int *")
        self._msgs_left = ffi.new("int *")
        # Callbacks of our own: curl_cffi's re-register the loop's reader at every call. They
        # must live as long as the multi handle, hence the attributes.
        self._socket_cb = ffi.callback(_SOCKET_CB, self._on_socket)
        self._timer_cb = ffi.callback(_TIMER_CB, self._on_timer)
        self._msetopt(CurlMOpt.SOCKETFUNCTION, self._socket_cb)
        self._msetopt(CurlMOpt.TIMERFUNCTION, self._timer_cb)

    def _done(self, owner: Any, code: int) -> None:
        """libcurl finished the transfer ``owner`` was added with (``code``: its CURLcode)."""
        raise NotImplementedError

    # -- adding and removing -------------------------------------------------------------------------

    def _add(self, ptr: Any, owner: Any) -> int:
        """Hand an easy handle to the multi handle; returns curl_multi_add_handle's code. A timer
        libcurl wants run at once is run here rather than one loop turn later."""
        self._running[ptr] = owner
        self._due = False
        self._starting = True
        try:
            code = lib.curl_multi_add_handle(self._multi, ptr)
        finally:
            self._starting = False
        if code:
            self._running.pop(ptr, None)
            return code
        if self._due:
            self._due = False
            self._wanted_at = None
            self._act(_SOCKET_TIMEOUT, 0)
        return 0

    def _remove(self, ptr: Any) -> None:
        """Take an easy handle out (this aborts a transfer still running)."""
        self._running.pop(ptr, None)
        if self._multi != ffi.NULL:
            lib.curl_multi_remove_handle(self._multi, ptr)

    def _close_multi(self) -> None:
        """Free the multi handle (closing its cached connections) and stop watching its sockets."""
        if self._multi != ffi.NULL:
            lib.curl_multi_cleanup(self._multi)  # socket callbacks run for the cached connections
            self._multi = ffi.NULL
        self._sockets.close()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _msetopt(self, option: int, value: Any) -> None:
        code = lib.curl_multi_setopt(self._multi, option, value)
        if code:
            raise TransferError(code, f"curl_multi_setopt({int(option)}) failed ({code})")

    # -- libcurl's callbacks ---------------------------------------------------------------------------

    def _on_socket(self, _easy: Any, fd: int, what: int, _clientp: Any, _socketp: Any) -> int:
        if what == POLL_REMOVE:
            self._sockets.remove(fd)
        else:
            self._sockets.set(fd, what)
        return 0

    def _on_timer(self, _multi: Any, timeout_ms: int, _clientp: Any) -> int:
        """libcurl's single timer: -1 removes it, 0 means "as soon as possible".

        libcurl moves its deadline on most calls (a transfer in progress pushes it 1 s ahead
        each time). Rather than replace the loop's timer each time, the latest wish is kept in
        ``_wanted_at`` and the loop's timer only moved earlier, never later: one firing early
        just re-arms for the wanted time (see ``_fire``)."""
        if timeout_ms < 0:
            self._wanted_at = None  # a timer still scheduled finds nothing to do
            return 0
        if timeout_ms == 0 and self._starting:
            self._due = True  # ``_add`` runs it when curl_multi_add_handle returns
            return 0
        loop = self.loop
        at = loop.time() + timeout_ms / 1000
        self._wanted_at = at
        timer = self._timer
        if timer is not None:
            if self._timer_at <= at:
                return 0
            timer.cancel()
        self._timer = loop.call_soon(self._fire) if timeout_ms == 0 else loop.call_at(at, self._fire)
        self._timer_at = at
        return 0

    def _fire(self) -> None:
        self._timer = None
        wanted = self._wanted_at
        if wanted is None:
            return
        if wanted > self.loop.time() + 0.001:  # moved later since this timer was set
            self._timer = self.loop.call_at(wanted, self._fire)
            self._timer_at = wanted
            return
        self._wanted_at = None  # libcurl reports its next deadline during the action
        self._act(_SOCKET_TIMEOUT, 0)

    def _act(self, fd: int, events: int) -> None:
        multi = self._multi
        if multi == ffi.NULL:
            return
        running = self._running
        lib.curl_multi_socket_action(multi, fd, events, self._still_running)
        if self._still_running[0] >= len(running):
            return  # nothing finished: no message to read
        info_read, msgs_left = lib.curl_multi_info_read, self._msgs_left
        while (msg := info_read(multi, msgs_left)) != ffi.NULL:
            if msg.msg != _MSG_DONE:
                continue
            owner = running.get(msg.easy_handle)
            if owner is not None:
                self._done(owner, msg.data.result)


def curl_message(code: int, error_buffer: Any) -> str:
    """libcurl's message for a failed transfer, from its error buffer when it wrote one."""
    message = ffi.string(error_buffer).decode("utf-8", "replace") if code else ""
    return f"curl: ({code}) {message}" if message else f"curl error {code}"
