"""The original TokenService API over the TokenLedger queue (see docs/clients.md)."""
from .client import LedgerClient, TokenLedgerError, connect, connection_settings, describe_error
from .events import EventConsumer, LedgerEvent
from .ids import crc32, partition_of, uuid7
from .service import (AffordResult, Balance, ChangeResult, Eligibility, EntryPage, LedgerEntry,
                      MonthlyRenewalService, OperationMetrics, RenewAllResult, Renewal, RenewalError,
                      Statistics, TokenLedgerView, TokenService)

__all__ = [
    "AffordResult", "Balance", "ChangeResult", "Eligibility", "EntryPage", "EventConsumer", "LedgerClient",
    "LedgerEntry", "LedgerEvent", "MonthlyRenewalService", "OperationMetrics", "RenewAllResult", "Renewal",
    "RenewalError", "Statistics", "TokenLedgerError", "TokenLedgerView", "TokenService", "connect",
    "connection_settings", "crc32", "describe_error", "partition_of", "uuid7",
]
