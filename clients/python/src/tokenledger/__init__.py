"""The original TokenService API over the TokenLedger queue (see docs/clients.md)."""
from .client import LedgerClient, TokenLedgerError, connect, connection_settings, describe_error
from .events import EventConsumer, LedgerEvent
from .ids import crc32, partition_of, uuid7
from .service import (AffordResult, Balance, ChangeResult, Eligibility, EntryPage, Grant, Holds, LedgerEntry,
                      MonthlyRenewalService, OpenHold, OperationMetrics, RenewAllResult, Renewal, RenewalError,
                      Statistics, TokenLedgerView, TokenService, WithHoldResult)

__all__ = [
    "AffordResult", "Balance", "ChangeResult", "Eligibility", "EntryPage", "EventConsumer", "Grant", "Holds",
    "LedgerClient", "LedgerEntry", "LedgerEvent", "MonthlyRenewalService", "OpenHold", "OperationMetrics",
    "RenewAllResult", "Renewal", "RenewalError", "Statistics", "TokenLedgerError", "TokenLedgerView", "TokenService",
    "WithHoldResult", "connect",
    "connection_settings", "crc32", "describe_error", "partition_of", "uuid7",
]
