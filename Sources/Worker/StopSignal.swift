import Synchronization

/// A flag set once, from any thread, and read by the worker's own thread between batches.
public final class StopSignal: Sendable {
    private let stopped = Atomic<Bool>(false)

    public init() {}

    public func stop() { stopped.store(true, ordering: .releasing) }
    public var isStopped: Bool { stopped.load(ordering: .acquiring) }
}
