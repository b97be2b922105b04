import Synchronization

/// What keeps the worker from serving, as the worker itself sees it: the ledger refusing writes
/// (locked, disk full, I/O errors) or Redis out of reach. `/readyz` reports it; the worker sets
/// it when an attempt fails and clears it on the next success.
public final class WorkerHealth: Sendable {
    private let state = Mutex<[String: String]>([:])

    public init() {}

    /// Empty while the worker can serve; else one line per problem, for `/readyz`.
    public var problems: [String] {
        state.withLock { $0.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" } }
    }

    func failing(_ part: Part, _ reason: String) {
        state.withLock { $0[part.rawValue] = reason }
    }

    func recovered(_ part: Part) {
        state.withLock { _ = $0.removeValue(forKey: part.rawValue) }
    }

    enum Part: String {
        case ledger, redis
    }
}
