"""FakeCodexThread: a FakeCodex on its own event loop in a daemon thread, for synchronous tests."""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from typing import Any

from codex_fake.backend import FakeCodex


class FakeCodexThread:
    """Same control methods as FakeCodex, callable from any thread (they run on the fake's loop)."""

    def __init__(self, **options: Any) -> None:
        self.fake = FakeCodex(**options)  # built here so bad options fail in the caller's thread
        self.loop: asyncio.AbstractEventLoop | None = None
        self.base_url: str | None = None
        self._thread: threading.Thread | None = None

    def start(self, host: str = "127.0.0.1", port: int = 0, timeout: float = 10) -> str:
        """Blocks until the fake listens; returns its base URL."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self.loop = loop
            try:
                self.base_url = loop.run_until_complete(self.fake.start(host, port))
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.fake.stop())
                loop.close()

        self._thread = threading.Thread(target=run, name="fake-codex", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("fake codex did not start")
        if failure:
            raise failure[0]
        assert self.base_url is not None
        return self.base_url

    def stop(self) -> None:
        loop, thread = self.loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._thread = None

    def __enter__(self) -> FakeCodexThread:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self.loop is None or self._thread is None:
            return getattr(self.fake, name)(*args, **kwargs)  # not started: nothing else touches it

        async def invoke() -> Any:
            return getattr(self.fake, name)(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(invoke(), self.loop).result(10)

    def reset(self) -> None:
        self._call("reset")

    def script(self, *scenarios: Any, account: str | None = None) -> None:
        self._call("script", *scenarios, account=account)

    def fault(self, account: str, fault: Any, times: int | None = None) -> None:
        self._call("fault", account, fault, times)

    def clear_fault(self, account: str) -> None:
        self._call("clear_fault", account)

    def requests(self, path_suffix: str | None = None) -> list[dict[str, Any]]:
        return self._call("requests", path_suffix)

    def configure(self, **values: Any) -> None:
        self._call("configure", **values)

    def refresh_count(self, account: str | None = None) -> int:
        return self._call("refresh_count", account)

    def set_usage(self, account: str, **values: Any) -> None:
        self._call("set_usage", account, **values)

    def approve_device(self, user_code: str) -> bool:
        return self._call("approve_device", user_code)

    def stats(self) -> dict[str, int]:
        return self._call("stats")

    def drop_websockets(self, account: str | None = None) -> int:
        return self._call("drop_websockets", account)
