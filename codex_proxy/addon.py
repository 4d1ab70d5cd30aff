"""codex-proxy as a mitmproxy script inside the installed package: what the ``codex-proxy`` command
hands to mitmdump's ``-s`` (a checkout runs addons/codex.py, the same shim)."""

from core.hosts.addon import CodexGateway

addons = [CodexGateway()]
