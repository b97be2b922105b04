import Foundation

/// Serialises schema migrations across processes: an exclusive `flock` on a file beside the
/// ledger (`<ledger>-migrate.lock`), held while the migrator runs. The second process to get it
/// finds the migrations already run and proceeds.
///
/// Why a separate file: SQLite's own locks are POSIX record locks, which a process loses on its
/// file when it closes any descriptor of it; a lock on the ledger file itself would break them.
/// `flock` is released by the kernel when the process dies, so a crash never leaves it held.
enum MigrationLock {
    static func path(for ledgerPath: String) -> String { ledgerPath + "-migrate.lock" }

    static func holding<T>(for ledgerPath: String, _ body: () throws -> T) throws -> T {
        let fd = open(path(for: ledgerPath), O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { close(fd) }
        // Blocks only while another process migrates (bounded by its busy timeout per step).
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }
}
