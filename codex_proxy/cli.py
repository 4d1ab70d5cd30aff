"""``codex-proxy [mitmdump options]``: mitmdump with the codex-proxy addon, for an installed copy
(``pipx install .``, a wheel, the Docker image). Every argument goes to mitmdump as given, so
``codex-proxy --listen-host 0.0.0.0 -p 9000 --set codex_demo=true`` works as it would there.

Data lives in ``CODEX_PROXY_DATA_DIR``, else in the user's data folder (core/config.py), and the
shipped defaults come from the package itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mitmproxy.tools.main import mitmdump

ADDON = Path(__file__).resolve().with_name("addon.py")


def arguments(args: list[str]) -> list[str]:
    """mitmdump's arguments: our addon first, then the caller's."""
    return ["-s", str(ADDON), *args]


def main() -> int | None:
    return mitmdump(arguments(sys.argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
