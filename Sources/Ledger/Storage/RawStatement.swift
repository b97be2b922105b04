import GRDB
import GRDBSQLite

private let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// A GRDB cached statement driven through SQLite's C API, for the few statements every job
/// runs (job lookup, job and entry inserts, account load and write-back).
///
/// Why: measured on the charge path, GRDB's `StatementArguments` (an array of existentials
/// per call), `Row` decoding and the statement cache's SQL-string hashing cost more CPU than
/// SQLite's own B-tree work. The statement is still prepared and owned by GRDB (so it is
/// finalized with the connection); this only binds, steps and reads columns. It is used only
/// inside the ledger's own explicit transactions, where GRDB's per-statement bookkeeping
/// (transaction observation, which the ledger does not use) has nothing to do.
///
/// It keeps the GRDB `Statement` itself, not only its pointer: GRDB finalizes a statement when
/// its last reference goes (a statement-cache eviction, for instance), and a borrowed pointer
/// would then dangle. Bind failures (an index out of range, a value too big, SQLITE_MISUSE) are
/// thrown, never ignored: an unbound parameter would otherwise be written as NULL.
struct RawStatement {
    let statement: Statement
    let sql: String

    /// SQLite's statement; valid as long as `statement` is.
    @inline(__always) var handle: OpaquePointer { statement.sqliteStatement }

    init(_ db: Database, _ sql: String) throws {
        statement = try db.cachedStatement(sql: sql)
        self.sql = sql
    }

    /// Clears the previous run; call before binding.
    func reset() { sqlite3_reset(handle) }

    func bind(_ index: Int32, _ value: Int64) throws {
        try check(sqlite3_bind_int64(handle, index, value), index)
    }

    func bind(_ index: Int32, _ value: Int64?) throws {
        if let value { try check(sqlite3_bind_int64(handle, index, value), index) } else { try check(sqlite3_bind_null(handle, index), index) }
    }

    func bind(_ index: Int32, _ value: String?) throws {
        guard var value else { try check(sqlite3_bind_null(handle, index), index); return }
        let code = value.withUTF8 { utf8 in
            utf8.withMemoryRebound(to: CChar.self) { buffer in
                if let base = buffer.baseAddress {
                    return sqlite3_bind_text(handle, index, base, Int32(clamping: buffer.count), transient)
                }
                return sqlite3_bind_text(handle, index, "", 0, transient)
            }
        }
        try check(code, index)
    }

    func bind(_ index: Int32, blob: [UInt8]) throws {
        let code = blob.withUnsafeBytes { sqlite3_bind_blob(handle, index, $0.baseAddress, Int32(clamping: $0.count), transient) }
        try check(code, index)
    }

    @inline(__always) private func check(_ code: Int32, _ index: Int32) throws {
        if code != SQLITE_OK { throw bindFailure(code, index) }
    }

    private func bindFailure(_ code: Int32, _ index: Int32) -> DatabaseError {
        let message = String(cString: sqlite3_errstr(code))
        return DatabaseError(resultCode: ResultCode(rawValue: code), message: "cannot bind parameter \(index): \(message)", sql: sql)
    }

    /// Steps once: true when a row is available, false when done; throws SQLite's error.
    func step() throws -> Bool {
        switch sqlite3_step(handle) {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        case let code:
            let message = String(cString: sqlite3_errmsg(sqlite3_db_handle(handle)))
            sqlite3_reset(handle)
            throw DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: sql)
        }
    }

    /// Runs a statement that returns no row.
    func run() throws {
        _ = try step()
        sqlite3_reset(handle)
    }

    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }
    func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }
    func optionalInt64(_ column: Int32) -> Int64? { isNull(column) ? nil : int64(column) }

    func text(_ column: Int32) -> String {
        guard let bytes = sqlite3_column_text(handle, column) else { return "" }
        let count = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self)
    }

    func optionalText(_ column: Int32) -> String? { isNull(column) ? nil : text(column) }

    /// The column's text as bytes, without making a String (valid only inside `body`).
    func withBytes<T>(_ column: Int32, _ body: (UnsafeRawBufferPointer) -> T) -> T {
        let bytes = sqlite3_column_text(handle, column)
        let count = Int(sqlite3_column_bytes(handle, column))
        return body(UnsafeRawBufferPointer(start: bytes, count: bytes == nil ? 0 : count))
    }
}
