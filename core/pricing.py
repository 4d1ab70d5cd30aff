"""The estimated USD cost of a turn, from the pricing table (settings ``pricing.models``).

ChatGPT plans are not billed per token, so for a turn a ChatGPT account served this is the API
equivalent: what the same tokens of the same model would cost on the model's own API. Names in
the table are exact model ids or globs (``gpt-5.4*``); an exact name wins, then the longest glob
that matches, so ``claude-opus-4-5*`` beats ``claude-opus-4*``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping

from core.settings import Price

_GLOB_CHARS = frozenset("*?[")
_CACHE_LIMIT = 4096  # distinct model names remembered; clients can send any name


def is_glob(name: str) -> bool:
    return not _GLOB_CHARS.isdisjoint(name)


class Pricing:
    """Looks up a model's price (remembered per name: the table is fixed for this instance)."""

    def __init__(self, table: Mapping[str, Price]) -> None:
        self._exact = {name.lower(): price for name, price in table.items() if not is_glob(name)}
        globs = [(name.lower(), price) for name, price in table.items() if is_glob(name)]
        self._globs = sorted(globs, key=lambda item: -len(item[0]))
        self._found: dict[str, Price | None] = {}

    def price(self, model: str | None) -> Price | None:
        if not model:
            return None
        name = model.lower()
        try:
            return self._found[name]
        except KeyError:
            pass
        found = self._exact.get(name)
        if found is None:
            found = next((price for pattern, price in self._globs if fnmatch.fnmatchcase(name, pattern)), None)
        if len(self._found) < _CACHE_LIMIT:
            self._found[name] = found
        return found

    def cost(self, model: str | None, input_tokens: int | None, output_tokens: int | None, cached_tokens: int | None = None) -> float | None:
        """USD for one turn's usage; None when the model has no price or nothing was counted.
        ``input_tokens`` includes the cached ones (as the Responses API counts them)."""
        price = self.price(model)
        if price is None or (input_tokens is None and output_tokens is None):
            return None
        cached = min(max(cached_tokens or 0, 0), input_tokens or 0)
        fresh = (input_tokens or 0) - cached
        return (fresh * price.input + cached * price.cached_input + (output_tokens or 0) * price.output) / 1_000_000
