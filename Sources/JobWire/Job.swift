import Foundation
import LedgerModel

/// A job read from the queue and validated: the typed `Command` the ledger applies, plus what the
/// reply needs (`id`, `type`, `replyTo`).
public struct Job: Sendable {
    public let id: String?
    public let type: JobType
    public let replyTo: String?
    /// The account the job is about (nil for `renewAll`): it decides the job's partition.
    public let userId: String?
    public let command: Command

    /// The most bytes a job may have (the contract's 64 KiB).
    public static let maxBytes = 64 * 1024
    /// The most bytes `metadata` may have once serialized.
    public static let maxMetadataBytes = 16 * 1024
}

/// A job that could not be read, with the raw bytes kept for the dead-letter list.
public struct InvalidJob: Sendable, Error {
    public let raw: [UInt8]
    public let error: JobError
    /// What could still be read, so that the producer gets a failure reply.
    public let id: String?
    public let type: String?
    public let replyTo: String?

    public init(raw: [UInt8], error: JobError, id: String?, type: String?, replyTo: String?) {
        self.raw = raw
        self.error = error
        self.id = id
        self.type = type
        self.replyTo = replyTo
    }
}

extension Job {
    /// Reads raw queue bytes into a job, or explains why they are not one.
    ///
    /// Shape errors (not JSON, not an object, unknown type, missing or mistyped fields, invalid ids,
    /// too large) are `InvalidJob`s: dead letters. Values that are well-formed but refused (amount
    /// below 1, unknown operation or tier) are left to the ledger, which answers a stored refusal.
    public static func decode(_ raw: [UInt8]) -> Result<Job, InvalidJob> {
        func invalid(_ message: String, _ fields: RawJob? = nil) -> Result<Job, InvalidJob> {
            .failure(InvalidJob(raw: raw, error: JobError(message), id: fields?.id.value,
                                type: fields?.type.value, replyTo: fields?.replyTo.value))
        }
        guard raw.count <= maxBytes else {
            return invalid("The job is \(raw.count) bytes; at most \(maxBytes) are accepted.")
        }
        // Validated first: a job that is not UTF-8 is kept as base64 in its dead letter.
        guard String(validating: raw, as: UTF8.self) != nil else {
            return invalid("The job is not valid UTF-8.")
        }
        let fields: RawJob
        do {
            fields = try RawJob(raw)
        } catch {
            return .failure(InvalidJob(raw: raw, error: error, id: nil, type: nil, replyTo: nil))
        }
        do {
            return .success(try JobBuilder(fields).build())
        } catch {
            return invalid(error.message, fields)
        }
    }
}
