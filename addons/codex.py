"""codex-proxy as a mitmproxy script: ``mitmdump -s addons/codex.py`` (or ``mitmweb -s ...``).

A thin shim: everything lives in ``core``. mitmproxy reloads this file when it changes, but not
``core`` (restart the proxy after editing it).
"""

import sys
from pathlib import Path

# mitmproxy puts only this file's folder on sys.path while loading it; make ``core`` importable
# even without ``pip install -e .``.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from core.hosts.addon import CodexGateway  # noqa: E402

addons = [CodexGateway()]
