"""Client access keys (``sk-proxy-…``): who may call the data plane, on which models, how much.

``keys`` holds what a key is (pure: format, hashing, budget periods, the checks on a key's
settings), ``guard`` the in-memory index and counters the hot path consults, ``service`` what the
management API does with keys (create, change, delete, show).
"""
