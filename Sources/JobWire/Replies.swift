import Foundation
import Ledger

/// The JSON a job's producer and the dead-letter list receive (invalidations are
/// `BalanceChange.json`, written by the ledger).
public enum Replies {
    /// `{"id", "type", <the ledger's result fields>, "duplicate"}`: the ledger stores the result
    /// fields once; id, type and whether this delivery was a replay are added per delivery.
    public static func result(for job: Job, _ result: CommandResult) -> String {
        var json = JSONWriter(capacity: result.json.utf8.count + 64)
        json.beginObject()
        json.key("id"); json.string(job.id)
        json.key("type"); json.string(job.type.rawValue)
        json.members(of: result.json)
        // Every result of a job with an id says whether it was a replay; a query's never is.
        if job.type.isMutation || job.id != nil { json.key("duplicate"); json.bool(result.duplicate) }
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
