"""Run mitmproxy's own test suite with codex-proxy's patches to mitmproxy installed.

core/hosts/dispatch.py, core/hosts/virtual.py, core/hosts/base_url.py and
core/hosts/listen_backlog.py change how mitmproxy dispatches hooks, opens upstream connections,
listens and first reads a client connection; this checks that mitmproxy's own tests see no
difference. mitmproxy's tests
are not in its wheel, so they come from a checkout of its repository at the version installed here:

    git clone --branch v12.3.1 --depth 1 https://github.com/mitmproxy/mitmproxy /tmp/mitmproxy
    .venv/bin/pip install pytest-asyncio hypothesis
    .venv/bin/python scripts/mitmproxy_suite.py /tmp/mitmproxy            # with the patches
    .venv/bin/python scripts/mitmproxy_suite.py /tmp/mitmproxy --stock    # without, to compare

The installed mitmproxy is tested (not the checkout's source): only its ``test/`` folder is used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CONFTEST = f'''
import os, sys
sys.path.insert(0, {str(ROOT)!r})
if not os.environ.get("CODEX_PROXY_STOCK"):
    from core.hosts import base_url, dispatch, listen_backlog, virtual
    from core.hosts.credentials import ResponseSecrets
    assert dispatch.install(), "this mitmproxy version is not one the patches were proven on"

    async def _serve(flow, conn):
        raise AssertionError("no flow is claimed in mitmproxy's own tests")

    virtual.install(_serve, lambda flow: False)
    listen_backlog.install()
    # Every regular-mode connection first meets the base-URL path, which claims nothing here and
    # so hands each one to mitmproxy's handler: its own tests check that the hand-off is invisible.
    assert base_url.install(lambda flow: False, _serve, 1 << 26)
    ResponseSecrets().install()
'''

PYTEST_INI = """[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
testpaths = test
filterwarnings =
    ignore::DeprecationWarning
"""


def main(argv: list[str]) -> int:
    if not argv or not (Path(argv[0]) / "test" / "mitmproxy").is_dir():
        print(__doc__)
        return 2
    with tempfile.TemporaryDirectory(prefix="mitmproxy-suite-") as work:
        shutil.copytree(Path(argv[0]) / "test", Path(work) / "test")
        (Path(work) / "conftest.py").write_text(CONFTEST)
        (Path(work) / "pytest.ini").write_text(PYTEST_INI)
        env = {**os.environ, "CODEX_PROXY_STOCK": "1" if "--stock" in argv else ""}
        return subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test/mitmproxy"], cwd=work, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
