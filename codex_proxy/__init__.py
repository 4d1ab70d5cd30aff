"""The installed command: ``codex-proxy`` runs mitmdump with this package's addon (addon.py)."""
