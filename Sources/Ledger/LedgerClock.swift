import Foundation

/// The only source of "now" for the ledger.
///
/// Renewal periods, entry timestamps and eligibility all depend on time; reading the wall
/// clock directly would make them untestable. The worker passes a `SystemClock`; tests and the
/// worker's scheduler tests pass a `ManualClock` and move it explicitly.
public protocol LedgerClock: Sendable {
    func now() -> Date
}

/// The wall clock.
public struct SystemClock: LedgerClock {
    public init() {}
    public func now() -> Date { Date() }
}

/// A clock that only moves when told to, for tests.
///
/// It is a class so that one instance can be shared between the ledger and the test that drives
/// it; a lock makes it safe to read from the writer while a test moves it.
public final class ManualClock: LedgerClock, @unchecked Sendable {
    private let lock = NSLock()
    private var current: Date

    public init(_ start: Date = Date(timeIntervalSince1970: 1_767_225_600)) {  // 2026-01-01T00:00:00Z
        current = start
    }

    public func now() -> Date {
        lock.lock(); defer { lock.unlock() }
        return current
    }

    /// Moves the clock to `date` (backwards too, although the ledger never dates an entry
    /// before its predecessor; see `Ledger.apply`).
    public func set(_ date: Date) {
        lock.lock(); defer { lock.unlock() }
        current = date
    }

    public func advance(by seconds: TimeInterval) {
        lock.lock(); defer { lock.unlock() }
        current = current.addingTimeInterval(seconds)
    }
}
