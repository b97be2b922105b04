import Foundation
import GRDB

extension Ledger {
    /// Writes a consistent copy of the ledger to a new file at `destination` (mode 0600), with
    /// SQLite's online backup API.
    ///
    /// The copy is read on a separate read-only connection inside one read transaction: in WAL
    /// mode it sees one committed state and neither waits for nor blocks the writer. Refuses to
    /// overwrite an existing file. `verify` passes on the copy whenever it passes on the source.
    public func backup(to destination: String) throws {
        try Self.backup(from: path, to: destination, config: config)
    }

    /// The same, for a process that is not the ledger's writer (the CLI's `backup`).
    /// The source is opened with `LedgerReader` (read-only, schema checked) before the
    /// destination is made, so a missing or foreign source leaves nothing behind.
    public static func backup(from source: String, to destination: String, config: LedgerConfig = .init()) throws {
        let from = try LedgerReader(path: source, config: config)
        defer { try? from.close() }
        if FileManager.default.fileExists(atPath: destination) {
            throw LedgerStorageError.backupDestinationExists(path: destination)
        }
        let fd = open(destination, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let code = errno
            if code == EEXIST { throw LedgerStorageError.backupDestinationExists(path: destination) }
            throw POSIXError(POSIXErrorCode(rawValue: code) ?? .EIO)
        }
        close(fd)
        do {
            var c = Configuration()
            c.busyMode = .timeout(Double(config.busyTimeoutMilliseconds) / 1000)
            let to = try DatabaseQueue(path: destination, configuration: c)
            try from.reader.backup(to: to)
            try to.close()
        } catch {
            try? FileManager.default.removeItem(atPath: destination)
            throw error
        }
    }
}
