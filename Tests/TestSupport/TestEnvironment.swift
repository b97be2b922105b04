import Foundation
import Redis

/// Where integration tests find their servers.
///
/// `REDIS_URL` names the shared redis-server (default `redis://127.0.0.1:6379/0`); the README's test
/// command starts one on a free port and exports it. Tests that must stop, restart or protect a
/// server start a private one with `RedisServerProcess`, using `REDIS_SERVER` (default
/// `redis-server` on the PATH).
public enum TestEnvironment {
    public static var redisURL: String {
        ProcessInfo.processInfo.environment["REDIS_URL"] ?? "redis://127.0.0.1:6379/0"
    }

    public static var redisServerBinary: String {
        ProcessInfo.processInfo.environment["REDIS_SERVER"] ?? "redis-server"
    }

    /// A key prefix no other test uses, so tests can share one server and run in any order.
    public static func uniquePrefix(_ name: String = "test") -> String {
        "\(name):\(UUID().uuidString.prefix(8))"
    }

    /// A fresh folder under the system's temporary directory.
    public static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("tokenledger-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

#if canImport(Glibc)
import Glibc
#endif

extension TestEnvironment {
    /// A TCP port on 127.0.0.1 that was free a moment ago.
    public static func freePort() -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                _ = bind(fd, raw, length)
                _ = getsockname(fd, raw, &length)
            }
        }
        return UInt16(bigEndian: address.sin_port)
    }
}
