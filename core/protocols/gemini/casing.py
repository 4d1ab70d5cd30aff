"""Google's JSON in both spellings: protobuf JSON is camelCase, but snake_case keys are valid too."""

from __future__ import annotations

import functools
import re
from typing import Any


@functools.cache
def snake_case(camel: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", camel).lower()


@functools.cache
def camel_case(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def pick(obj: Any, camel: str) -> Any:
    """``obj[camel]``, or its snake_case spelling (both are valid protobuf JSON)."""
    if not isinstance(obj, dict):
        return None
    value = obj.get(camel)
    return value if value is not None else obj.get(snake_case(camel))
