"""How a call reports what went wrong."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional

if TYPE_CHECKING:
    from .results import Refusal

Job = Dict[str, Any]
Reply = Dict[str, Any]


def describe_error(code: str, message: str) -> str:
    """`Insufficient tokens: The balance of 3 tokens does not cover the 5 tokens required.`: the
    code as words, then the worker's sentence. The words keep the original service's checks
    working (`'Insufficient tokens' in error`, `'User not found'`, `'Unknown operation'`)."""
    words = code.replace("_", " ")
    return f"{words[:1].upper()}{words[1:]}: {message}"


class TokenLedgerError(Exception):
    """A refusal raised by a query, a failed call, `timeout`, or a reply that cannot be read.
    `str(error)` is describe_error's text, `detail` the worker's sentence. For a worker's refusal,
    `refusal` is the same Refusal a change answers, so that both kinds of call report a refusal
    with the same fields, and `reply` the reply it came in."""

    def __init__(self, code: str, message: str, reply: Optional[Reply] = None, job: Optional[Job] = None,
                 refusal: Optional["Refusal"] = None):
        super().__init__(describe_error(code, message))
        self.code = code
        self.detail = message
        self.reply = reply
        self.job = job
        self.refusal = refusal


class ReplyShapeError(TokenLedgerError):
    """A reply whose shape is not the contract's; `field` names the first field found wrong (as a
    path, `entries[2].tokensAmount`)."""

    def __init__(self, field: str, expected: str, text: str):
        super().__init__("invalid_reply", f"Field '{field}' of the reply must be {expected}; the reply was {text[:300]}")
        self.field = field
        self.expected = expected
