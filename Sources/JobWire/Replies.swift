import Foundation
import LedgerModel

/// Every message the worker writes, from typed values: a job's reply (from its `Outcome`), a
/// failure reply and a dead letter (from a `JobError`), an invalidation (from a `BalanceChange`),
/// a stream event's fields and an alert (from a `LedgerEvent`, or `job.applied` from the job and
/// its result). Each is written once, here; the `append` forms write straight into a buffer (the
/// argument of the Redis command that carries it).
public enum Replies {
    /// `{"id", "type", <the outcome's fields>, "duplicate"}`: id, type and whether this delivery
    /// was a replay are added per delivery; the outcome is the one stored under the job id.
    public static func result(for job: Job, _ outcome: Outcome, duplicate: Bool) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(160)
        appendResult(for: job, outcome, duplicate: duplicate, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    public static func appendResult(for job: Job, _ outcome: Outcome, duplicate: Bool, to buffer: inout [UInt8]) {
        JSONWriter.append(to: &buffer) { json in
            json.beginObject()
            json.key("id"); json.string(job.id)
            json.key("type"); json.string(job.type.rawValue)
            json.members(of: outcome)
            // Every result of a job with an id says whether it was a replay; a query's never is.
            if job.type.isMutation || job.id != nil { json.key("duplicate"); json.bool(duplicate) }
            json.endObject()
        }
    }

    /// `{"success":…, <the outcome's fields>}`: the object a result was stored as before outcomes
    /// were typed, without `id`, `type` and `duplicate` (for the command line and tests).
    public static func fields(of outcome: Outcome) -> String {
        var json = JSONWriter(capacity: 160)
        json.beginObject()
        json.members(of: outcome)
        json.endObject()
        return json.text
    }

    /// The failure reply for a job that could not be read.
    public static func failure(id: String?, type: String?, error: JobError) -> String {
        var json = JSONWriter()
        json.beginObject()
        json.key("id"); json.string(id)
        json.key("type"); json.string(type)
        json.key("success"); json.bool(false)
        json.key("error"); write(error, into: &json)
        // A job that could not be read was never applied: with an id, not a replay either.
        if id != nil { json.key("duplicate"); json.bool(false) }
        json.endObject()
        return json.text
    }

    /// `{"job": raw, "error": {...}, "failedAt"}`, or `jobBase64` for bytes that are not UTF-8.
    public static func deadLetter(raw: [UInt8], error: JobError, at date: Date) -> String {
        var json = JSONWriter(capacity: raw.count + 128)
        json.beginObject()
        if let text = String(validating: raw, as: UTF8.self) {
            json.key("job"); json.string(text)
        } else {
            json.key("jobBase64"); json.string(Data(raw).base64EncodedString())
        }
        json.key("error"); write(error, into: &json)
        json.key("failedAt"); json.time(ms: LedgerTime.milliseconds(date))
        json.endObject()
        return json.text
    }

    private static func write(_ error: JobError, into json: inout JSONWriter) {
        json.beginObject()
        json.key("code"); json.string(error.code)
        json.key("message"); json.string(error.message)
        json.endObject()
    }
}

/// The invalidation message of the contract: `{"userId","tokensBalance","tokensSpent","held",
/// "available","tier","ledgerEntryId","operationType","tokensAmount","at"}`, with `"partition"`
/// first on a split ledger (every partition publishes on the one channel).
public enum Invalidations {
    public static func message(_ change: BalanceChange, partition: Int?) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(200)
        append(change, partition: partition, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    public static func append(_ c: BalanceChange, partition: Int?, to buffer: inout [UInt8]) {
        JSONWriter.append(to: &buffer) { w in
            w.beginObject()
            if let partition { w.key("partition"); w.int(partition) }
            w.key("userId"); w.string(c.userId)
            w.key("tokensBalance"); w.int(c.tokensBalance)
            w.key("tokensSpent"); w.int(c.tokensSpent)
            w.key("held"); w.int(c.held)
            w.key("available"); w.int(c.available)
            w.key("tier"); w.string(c.tier)
            w.key("ledgerEntryId"); w.int(c.ledgerEntryId)
            w.key("operationType"); w.string(c.operationType)
            w.key("tokensAmount"); w.int(c.tokensAmount)
            w.key("at"); w.time(ms: LedgerTime.milliseconds(c.at))
            w.endObject()
        }
    }
}
