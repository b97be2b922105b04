import Foundation
import GRDB

/// Why a ledger call failed, read from SQLite's result code rather than guessed from what else
/// commits: a one-row write can still commit on a full disk (it needs no new page) or in the
/// gap of a lock that comes and goes, so "other writes succeed" says nothing about the job.
public enum StorageFailure {
    /// The cause of one failure. Only the job's own causes may ever count against a job.
    public enum Cause: String, Sendable, Equatable, CaseIterable {
        // The storage's condition: never the job's fault, however long or often.
        case busy, locked, full, readOnly, ioError, outOfMemory, cannotOpen, lockProtocol, corrupt, notADatabase
        // The job's own statements: a constraint (a trigger's RAISE included), a size or a type it breaks.
        case constraint, tooBig, mismatch, range
        /// Neither known (a generic SQL error, an error that is not SQLite's): it never counts
        /// against a job either, since a valid job must not be lost to a cause nobody named.
        case unclassified

        /// Whether a failure of this cause may be a strike against the job that met it.
        public var isTheJobsOwn: Bool {
            switch self {
            case .constraint, .tooBig, .mismatch, .range: return true
            default: return false
            }
        }

        /// Whether the storage may heal by itself (a lock freed, space made, a volume mounted),
        /// so that start-up and the CLI wait rather than exit. A file that is not a ledger, or a
        /// corrupt one, does not heal: waiting would hide it.
        public var passes: Bool {
            switch self {
            case .busy, .locked, .full, .readOnly, .ioError, .outOfMemory, .cannotOpen, .lockProtocol: return true
            default: return false
            }
        }
    }

    /// Classifies by the primary result code, so every extended code (IOERR_*, BUSY_SNAPSHOT,
    /// CONSTRAINT_TRIGGER, ...) falls under its family.
    public static func cause(of error: any Error) -> Cause {
        guard let error = error as? DatabaseError else { return .unclassified }
        return cause(ofResultCode: error.resultCode.primaryResultCode)
    }

    public static func cause(ofResultCode code: ResultCode) -> Cause {
        switch code.primaryResultCode {
        case .SQLITE_BUSY: return .busy
        case .SQLITE_LOCKED: return .locked
        case .SQLITE_FULL: return .full
        case .SQLITE_READONLY: return .readOnly
        case .SQLITE_IOERR: return .ioError
        case .SQLITE_NOMEM: return .outOfMemory
        case .SQLITE_CANTOPEN: return .cannotOpen
        case .SQLITE_PROTOCOL: return .lockProtocol
        case .SQLITE_CORRUPT: return .corrupt
        case .SQLITE_NOTADB: return .notADatabase
        case .SQLITE_CONSTRAINT: return .constraint
        case .SQLITE_TOOBIG: return .tooBig
        case .SQLITE_MISMATCH: return .mismatch
        case .SQLITE_RANGE: return .range
        default: return .unclassified
        }
    }

    /// A stop was asked for while waiting for the storage: not a failure, the caller exits 0.
    public struct Stopped: Error, Sendable, CustomStringConvertible {
        public init() {}
        public var description: String { "stopped while waiting for the ledger" }
    }

    /// Capped exponential backoff: 0.1 s, 0.2 s, ... up to 5 s (as the worker's loop).
    public static func backoffSeconds(_ attempt: Int) -> Double {
        min(5, 0.05 * Double(1 << min(max(attempt, 1), 7)))
    }

    /// Runs `body` until it succeeds, waiting out every failure whose cause `passes` (a busy or
    /// locked ledger, a full disk...) with capped backoff: what start-up and the CLI do, so that
    /// they follow the loop's outage rules instead of exiting. `report` hears each failure (to
    /// log it and report not ready); `stopRequested` is polled while waiting, and a stop throws
    /// `Stopped`. Any other failure is thrown at once.
    public static func waitingOut<T>(stopRequested: () -> Bool = { false },
                                     report: (_ error: any Error, _ cause: Cause, _ attempt: Int) -> Void,
                                     _ body: () throws -> T) throws -> T {
        var attempt = 0
        while true {
            if stopRequested() { throw Stopped() }
            do {
                return try body()
            } catch {
                let cause = cause(of: error)
                guard cause.passes else { throw error }
                attempt += 1
                report(error, cause, attempt)
                var left = backoffSeconds(attempt)
                while left > 0 {
                    if stopRequested() { throw Stopped() }
                    usleep(useconds_t(min(left, 0.05) * 1_000_000))
                    left -= 0.05
                }
            }
        }
    }
}
