"""Gemini's schemas (OpenAPI-style ``Schema``, uppercase type names) as the JSON Schema the backend takes."""

from __future__ import annotations

from typing import Any

from core.protocols.gemini.casing import camel_case, pick

_JSON_SCHEMA_FORMATS = frozenset({"date-time", "date", "time", "duration", "email", "hostname", "ipv4", "ipv6", "uri", "uuid"})


def openapi_to_json_schema(node: Any) -> Any:
    """Gemini's OpenAPI-style ``Schema`` (``type: "OBJECT"``, ``nullable``, ``propertyOrdering``,
    ``defs``/``ref``) as the JSON Schema the backend expects."""
    if isinstance(node, list):
        return [openapi_to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for raw_key, value in node.items():
        key = camel_case(raw_key)
        if key in ("propertyOrdering", "example", "nullable"):
            continue
        if key == "type":
            if isinstance(value, str) and value.upper() != "TYPE_UNSPECIFIED":
                out["type"] = value.lower()
        elif key == "format":
            if value in _JSON_SCHEMA_FORMATS:
                out["format"] = value
        elif key in ("properties", "defs") and isinstance(value, dict):
            out["$defs" if key == "defs" else key] = {name: openapi_to_json_schema(s) for name, s in value.items()}
        elif key == "ref" and isinstance(value, str):
            out["$ref"] = value.replace("#/defs/", "#/$defs/")
        elif key in ("items", "anyOf", "additionalProperties"):
            out[key] = openapi_to_json_schema(value)
        else:
            out[key] = value
    if pick(node, "nullable") is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        elif "anyOf" in out:
            out["anyOf"] = [*out["anyOf"], {"type": "null"}]
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out


_OPENAPI_TYPES = frozenset({"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"})


def lowercase_types(node: Any) -> Any:
    """A JSON Schema with Gemini's uppercase type names (``"OBJECT"``) lowercased. Gemini accepts
    them in ``responseJsonSchema`` and ``parametersJsonSchema`` too, and Gemini CLI sends them
    there; JSON Schema (and the backend) knows only lowercase."""
    if isinstance(node, list):
        return [lowercase_types(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {key: lowercase_types(value) for key, value in node.items()}
    kind = node.get("type")
    if isinstance(kind, str) and kind in _OPENAPI_TYPES:
        out["type"] = kind.lower()
    elif isinstance(kind, list):
        out["type"] = [k.lower() if isinstance(k, str) and k in _OPENAPI_TYPES else k for k in kind]
    return out
