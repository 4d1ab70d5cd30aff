"""Real proxy servers for the proxy-pool tests: Debian's ``tinyproxy`` (HTTP, basic auth) and
``microsocks`` (SOCKS5, user/password), each on a free loopback port and each making its outgoing
connections from its own loopback address (127.0.0.2, 127.0.0.3…), so the server behind it can
tell which proxy a request came through. The Makefile installs both (``make test``).

Run as root, tinyproxy drops to ``nobody`` (it refuses to keep root); its log goes to a file this
process opened, so the unprivileged server can still write it."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import quote

from tests.support.servers import free_port


def binary(name: str) -> str:
    path = shutil.which(name) or f"/usr/bin/{name}"
    if not Path(path).exists():
        raise RuntimeError(f"{name} is not installed: `make test` installs it (apt-get install {name})")
    return path


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class ProxyServer:
    """One proxy server process; ``start()`` again after ``kill()`` brings it back on the same port."""

    scheme = ""

    def __init__(self, folder: Path, exit_address: str, username: str, password: str) -> None:
        self.folder = folder
        self.exit_address = exit_address  # where its outgoing connections come from
        self.username = username
        self.password = password
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)
        self.log_path = folder / "server.log"

    @property
    def url(self) -> str:
        """How a user gives it to the proxy pool (credentials percent-encoded in the URL)."""
        return f"{self.scheme}://{quote(self.username, safe='')}:{quote(self.password, safe='')}@127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 10.0) -> Self:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not _listening(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{self.command()[0]} did not start:\n{self.log()}")
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        """Gone at once, as a crashed or unplugged proxy is: connections to its port are refused."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(5)
        deadline = time.monotonic() + 5
        while _listening(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.kill()


class Tinyproxy(ProxyServer):
    """tinyproxy in the foreground, HTTP with basic auth (its user names and passwords are
    letters, digits, ``-``, ``.`` and ``_``)."""

    scheme = "http"

    def command(self) -> list[str]:
        lines = [f"Port {self.port}", "Listen 127.0.0.1", f"Bind {self.exit_address}", "Timeout 60", "LogLevel Connect",
                 "MaxClients 100", "Allow 127.0.0.1", f"BasicAuth {self.username} {self.password}", "DisableViaHeader Yes"]
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            lines += [f"User {nobody.pw_name}", f"Group {grp.getgrgid(nobody.pw_gid).gr_name}"]
        config = self.folder / "tinyproxy.conf"
        config.write_text("\n".join(lines) + "\n")
        return [binary("tinyproxy"), "-d", "-c", str(config)]


class Microsocks(ProxyServer):
    """microsocks: SOCKS5 with a user name and password (any characters)."""

    scheme = "socks5"

    def command(self) -> list[str]:
        return [binary("microsocks"), "-i", "127.0.0.1", "-p", str(self.port), "-u", self.username, "-P", self.password,
                "-b", self.exit_address]
