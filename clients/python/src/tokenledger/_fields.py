"""Reading replies: every field a result exposes is checked here, so that a reply of another shape
fails with the field's name instead of travelling on as a wrong type."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .errors import ReplyShapeError

JsonObject = Dict[str, Any]


class Fields:
    """The fields of one JSON object of a reply. Python ints hold the ledger's 64-bit values
    exactly, so integers are checked for their type only (bool is not an int here)."""

    def __init__(self, value: Mapping[str, Any], path: str, text: str):
        self.value, self._path, self._text = value, path, text

    def _name(self, field: str) -> str:
        return f"{self._path}.{field}" if self._path else field

    def _fail(self, field: str, expected: str) -> ReplyShapeError:
        return ReplyShapeError(self._name(field), expected, self._text)

    def has(self, field: str) -> bool:
        return self.value.get(field) is not None

    def integer(self, field: str) -> int:
        v = self.value.get(field)
        if not isinstance(v, int) or isinstance(v, bool):
            raise self._fail(field, "an integer")
        return v

    def integer_or_none(self, field: str) -> Optional[int]:
        return self.integer(field) if self.has(field) else None

    def string(self, field: str) -> str:
        v = self.value.get(field)
        if not isinstance(v, str):
            raise self._fail(field, "a string")
        return v

    def string_or_none(self, field: str) -> Optional[str]:
        return self.string(field) if self.has(field) else None

    def boolean(self, field: str) -> bool:
        v = self.value.get(field)
        if not isinstance(v, bool):
            raise self._fail(field, "true or false")
        return v

    def boolean_or(self, field: str, default: bool) -> bool:
        return self.boolean(field) if self.has(field) else default

    def time(self, field: str) -> datetime:
        v = self.value.get(field)
        try:
            if isinstance(v, str):
                return datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            pass
        raise self._fail(field, "an ISO 8601 time")

    def time_or_none(self, field: str) -> Optional[datetime]:
        return self.time(field) if self.has(field) else None

    def json_object_or_none(self, field: str) -> Optional[JsonObject]:
        v = self.value.get(field)
        if v is None:
            return None
        if not isinstance(v, dict):
            raise self._fail(field, "an object or null")
        return v

    def member(self, field: str) -> "Fields":
        v = self.value.get(field)
        if not isinstance(v, dict):
            raise self._fail(field, "an object")
        return Fields(v, self._name(field), self._text)

    def items(self, field: str) -> List[Tuple[str, "Fields"]]:
        """The members of an object whose values are objects."""
        outer = self.member(field)
        return [(key, outer.member(key)) for key in outer.value]

    def array(self, field: str) -> List["Fields"]:
        v = self.value.get(field)
        if not isinstance(v, list):
            raise self._fail(field, "an array")
        out: List[Fields] = []
        for index, item in enumerate(v):
            if not isinstance(item, dict):
                raise self._fail(f"{field}[{index}]", "an object")
            out.append(Fields(item, self._name(f"{field}[{index}]"), self._text))
        return out


def read_reply(text: str) -> Fields:
    """Parses a reply and checks its envelope: `type`, `success`, `id`, `duplicate`, and `error`
    on a failure."""
    try:
        parsed = json.loads(text)
    except ValueError:
        raise ReplyShapeError("(reply)", "JSON", text) from None
    if not isinstance(parsed, dict):
        raise ReplyShapeError("(reply)", "a JSON object", text)
    fields = Fields(parsed, "", text)
    fields.string("type")
    if fields.has("id"):
        fields.string("id")
    fields.boolean_or("duplicate", False)
    if not fields.boolean("success"):
        error = fields.member("error")
        error.string("code")
        error.string("message")
    return fields
