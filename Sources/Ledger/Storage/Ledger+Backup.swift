import Foundation
import GRDB

extension Ledger {
    /// 1 MiB of 4 KiB pages: a step per redraw or so on a disk, not one per page.
    static let backupPagesPerStep: CInt = 256

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
    ///
    /// With `progress`, the copy goes in steps of `backupPagesPerStep` pages, each reported as
    /// (pages copied, pages in all); still from one snapshot (see below).
    public static func backup(from source: String, to destination: String, config: LedgerConfig = .init(),
                              progress: ((_ copiedPages: Int, _ totalPages: Int) -> Void)? = nil) throws {
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
            try to.writeWithoutTransaction { copyDb in
                try from.reader.read { sourceDb in
                    // The first read starts the read transaction, which then stays open across the
                    // steps: a writer's commits in between neither reach the copy nor make SQLite
                    // restart it (it restarts only when its own snapshot moves).
                    _ = try Int.fetchOne(sourceDb, sql: "SELECT count(*) FROM sqlite_master")
                    try sourceDb.backup(to: copyDb, pagesPerStep: progress == nil ? -1 : Self.backupPagesPerStep) { step in
                        progress?(step.completedPageCount, step.totalPageCount)
                    }
                }
            }
            try to.close()
        } catch {
            try? FileManager.default.removeItem(atPath: destination)
            throw error
        }
    }
}
