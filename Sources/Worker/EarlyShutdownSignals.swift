import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// SIGTERM or SIGINT that arrive while the process is still starting, before the service group
/// traps signals, would kill it with the default action (exit by signal, not 0). Installed first
/// thing, these handlers only remember that a stop was asked for; `WorkerService` then stops at once,
/// the group shuts down gracefully and the process exits 0. The group replaces them when it starts.
public enum EarlyShutdownSignals {
    private static let received = Atomic<Bool>(false)

    public static func install() {
        for number in [SIGTERM, SIGINT] {
            // An atomic store is async-signal-safe; nothing else happens in the handler.
            signal(number) { _ in EarlyShutdownSignals.received.store(true, ordering: .relaxed) }
        }
    }

    public static var wereReceived: Bool { received.load(ordering: .relaxed) }
}
