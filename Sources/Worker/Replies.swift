import Foundation
import Ledger

/// The JSON a job's producer, the dead-letter list and the cache layers receive.
enum Replies {
    /// `{"id", "type", <the ledger's result fields>, "duplicate"}`: the ledger stores the result
    /// fields once; id, type and whether this delivery was a replay are added per delivery.
    static func result(for job: Job, _ result: CommandResult) -> String {
        var json = JSONText(capacity: result.json.utf8.count + 64)
        json.field("id", job.id)
        json.field("type", job.type.rawValue)
        json.members(of: result.json)
        if job.type.isMutation { json.field("duplicate", result.duplicate) }
        return json.finish()
    }

    /// The failure reply for a job that could not be read.
    static func failure(id: String?, type: String?, error: JobError) -> String {
        var json = JSONText()
        json.field("id", id)
        json.field("type", type)
        json.field("success", false)
        json.field("error", raw: errorObject(error))
        return json.finish()
    }

    /// `{"job": raw, "error": {...}, "failedAt"}`, or `jobBase64` for bytes that are not UTF-8.
    static func deadLetter(raw: [UInt8], error: JobError, at date: Date) -> String {
        var json = JSONText(capacity: raw.count + 128)
        if let text = String(validating: raw, as: UTF8.self) {
            json.field("job", text)
        } else {
            json.field("jobBase64", Data(raw).base64EncodedString())
        }
        json.field("error", raw: errorObject(error))
        json.field("failedAt", LedgerTime.format(date))
        return json.finish()
    }

    private static func errorObject(_ error: JobError) -> String {
        var json = JSONText()
        json.field("code", error.code)
        json.field("message", error.message)
        return json.finish()
    }
}
