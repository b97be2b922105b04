import Foundation
import Redis

/// A private redis-server on a unix socket in a temporary folder, for tests that stop, restart or
/// password-protect their server without disturbing the shared one.
public final class RedisServerProcess: @unchecked Sendable {
    public let directory: URL
    public let socketPath: String
    public let extraArguments: [String]
    private var process: Process?

    public init(extraArguments: [String] = []) throws {
        directory = try TestEnvironment.temporaryDirectory()
        socketPath = directory.appendingPathComponent("redis.sock").path
        self.extraArguments = extraArguments
        try start()
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }

    public var url: String { "unix://\(socketPath)" }

    public func start() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [TestEnvironment.redisServerBinary,
                             "--port", "0", "--unixsocket", socketPath, "--unixsocketperm", "700",
                             "--dir", directory.path, "--save", "", "--appendonly", "no",
                             "--daemonize", "no", "--loglevel", "warning"] + extraArguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        // Wait until the socket accepts connections.
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            // Connecting needs no password, so this works for protected servers too.
            if FileManager.default.fileExists(atPath: socketPath),
               (try? RedisConnection(configuration: .init(endpoint: .unix(path: socketPath), reconnect: .init(maxAttempts: 1)))) != nil {
                return
            }
            usleep(20_000)
        }
        throw RedisError.connection("private redis-server did not start at \(socketPath)")
    }

    /// Kills the server at once (SIGKILL): no goodbye to clients.
    public func stop() {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)  // a paused server too
        process.waitUntilExit()
        self.process = nil
        try? FileManager.default.removeItem(atPath: socketPath)
    }

    /// Freezes the server (SIGSTOP): connections are still accepted by the kernel, but nothing
    /// is answered, as with a server stuck on a slow disk or a long command.
    public func pause() {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGSTOP)
    }

    /// Thaws a paused server (SIGCONT).
    public func resume() {
        guard let process else { return }
        kill(process.processIdentifier, SIGCONT)
    }

    public func restart() throws {
        stop()
        try start()
    }
}
