"""The names an application shares with the ledger: error codes, tiers, operation types."""
from __future__ import annotations

import enum
from typing import Tuple

#: The codes of a worker's refusals (a result stored under the job id). Kept equal to
#: Tests/Golden/error-codes.json, which the tests check against the worker's source.
REFUSAL_CODES: Tuple[str, ...] = (
    "invalid_job", "user_not_found", "account_exists", "insufficient_tokens", "unknown_operation", "invalid_amount",
    "refund_exceeds_charge", "not_eligible", "duplicate_payment", "charge_not_found", "unknown_tier",
    "invalid_date_range", "invalid_months", "invalid_limit", "hold_not_found", "hold_closed", "hold_expired",
    "capture_exceeds_hold", "monitor_not_found", "invalid_expiry", "invalid_threshold", "reserved_grant_id",
    "reserved_operation_type",
)

#: The codes of dead letters (a job that was never applied), answered in their failure reply.
DEAD_LETTER_CODES: Tuple[str, ...] = ("invalid_job", "wrong_partition", "storage_error")

#: The client's own: `timeout` (no reply after every attempt: the outcome is unknown) and
#: `invalid_reply` (a reply this client cannot read: see ReplyShapeError).
CLIENT_CODES: Tuple[str, ...] = ("timeout", "invalid_reply")


class SubscriptionTier(str, enum.Enum):
    """The original service's tiers. A str, so it goes into a job as its name; calls that take a
    tier take any other tier the worker is configured with as a plain str too."""
    Gift = "Gift"
    Professional = "Professional"
    Business = "Business"

    def __str__(self) -> str:
        return self.value


#: An entry's operation type: `image_generation`, `chatgpt_message`, `purchase`, `renewal`,
#: `refund`, `bonus`, `capture`, `expiry` (the worker's own) or any name an application gives a
#: debit or credit.
OperationType = str
