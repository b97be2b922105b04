import Synchronization

/// A flag set once, from any thread, and read by each loop between turns. Whatever sleeps
/// outside a turn (the loop pool's poll of idle partitions) asks to be told (`onStop`).
public final class StopSignal: Sendable {
    private let stopped = Atomic<Bool>(false)
    private let observers = Mutex<[@Sendable () -> Void]>([])

    public init() {}

    public func stop() {
        stopped.store(true, ordering: .releasing)
        for observer in observers.withLock({ $0 }) { observer() }
    }

    public var isStopped: Bool { stopped.load(ordering: .acquiring) }

    /// Runs `observer` at the stop, or now if it came already.
    func onStop(_ observer: @escaping @Sendable () -> Void) {
        observers.withLock { $0.append(observer) }
        if isStopped { observer() }
    }
}
