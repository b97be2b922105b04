import LedgerModel

/// Events as they leave: the fields of a stream entry (`XADD P:events … event <name> <fields>`),
/// the alert published on `P:alerts`, and the worker's own `job.applied`.
public enum StreamEvents {
    public static let jobApplied = "job.applied"

    /// The event as written: with N > 1 partitions it carries its partition, last (the contract's
    /// Partitions).
    public static func outgoing(_ e: LedgerEvent, partition: Int?) -> LedgerEvent {
        guard let partition else { return e }
        var e = e
        e.add("partition", Int64(partition))
        return e
    }

    /// `job.applied`: `id, type, userId, success, code, tokensAmount, operationType, newBalance,
    /// ledgerEntryId, at`, absent fields left out. `own` is the job's own change as written;
    /// `atMs` the time to report (the first application's, for a replay with an entry).
    public static func jobApplied(_ job: Job, refusalCode: RefusalCode?, own: BalanceChange?, atMs: Int64) -> LedgerEvent {
        var e = LedgerEvent(jobApplied)
        e.add("id", job.id)
        e.add("type", job.type.rawValue)
        e.add("userId", job.command.operation.userId)
        e.add("success", refusalCode == nil)
        e.add("code", refusalCode?.rawValue)
        if let own {
            e.add("tokensAmount", own.tokensAmount)
            e.add("operationType", own.operationType)
            e.add("newBalance", own.tokensBalance)
            e.add("ledgerEntryId", own.ledgerEntryId)
        }
        e.add("at", ms: atMs)
        return e
    }

    /// `{"event": name, field: value, ...}`: the message published on `P:alerts`. Values that
    /// are numbers on the stream are numbers here too.
    public static func alert(_ e: LedgerEvent) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(160)
        appendAlert(e, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    public static func appendAlert(_ e: LedgerEvent, to buffer: inout [UInt8]) {
        JSONWriter.append(to: &buffer) { w in
            w.beginObject()
            w.key("event"); w.string(e.name)
            for f in e.fields {
                w.key(dynamic: f.key)
                if numericKeys.contains(f.key), let n = Int64(f.value) { w.int(n) } else { w.string(f.value) }
            }
            w.endObject()
        }
    }

    static let numericKeys: Set<String> = ["threshold", "available", "ledgerEntryId", "amount", "tokensAmount", "partition",
                                           "newBalance", "totalProcessed", "successful", "failed"]
}
