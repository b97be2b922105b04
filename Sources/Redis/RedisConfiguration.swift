/// Where and how to connect: parsed from a URL, with credentials kept apart so they can come from
/// the environment or a file instead of the command line.
///
/// Accepted URLs: `redis://[[user]:password@]host[:port][/db]` and
/// `unix:///path/to.sock[?db=N]`. Percent-escapes in user and password are decoded.
public struct RedisConfiguration: Sendable, Equatable, CustomStringConvertible {
    public enum Endpoint: Sendable, Equatable {
        case tcp(host: String, port: Int)
        case unix(path: String)
    }

    public var endpoint: Endpoint
    public var username: String?
    public var password: String?
    public var database: Int
    /// Seconds allowed to open the socket.
    public var connectTimeout: Double
    /// Seconds allowed for one reply (socket send and receive timeout). Blocking commands raise it
    /// for their own duration, since hiredis cannot use a context again after a timeout.
    public var commandTimeout: Double
    public var reconnect: ReconnectPolicy

    public init(
        endpoint: Endpoint = .tcp(host: "127.0.0.1", port: 6379),
        username: String? = nil,
        password: String? = nil,
        database: Int = 0,
        connectTimeout: Double = 2,
        commandTimeout: Double = 5,
        reconnect: ReconnectPolicy = .init()
    ) {
        self.endpoint = endpoint
        self.username = username
        self.password = password
        self.database = database
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.reconnect = reconnect
    }

    public init(url: String) throws(RedisError) {
        self.init()
        if url.hasPrefix("unix://") {
            var rest = Substring(url.dropFirst("unix://".count))
            if let q = rest.firstIndex(of: "?") {
                try parseQuery(rest[rest.index(after: q)...])
                rest = rest[..<q]
            }
            guard rest.hasPrefix("/") else {
                throw .invalidConfiguration("a unix URL needs an absolute path: unix:///path/to.sock")
            }
            endpoint = .unix(path: String(rest))
            return
        }
        guard url.hasPrefix("redis://") else {
            throw .invalidConfiguration("the URL must start with redis:// or unix://")
        }
        var rest = Substring(url.dropFirst("redis://".count))
        if let q = rest.firstIndex(of: "?") {
            try parseQuery(rest[rest.index(after: q)...])
            rest = rest[..<q]
        }
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                let user = credentials[..<colon]
                username = user.isEmpty ? nil : Self.percentDecoded(user)
                password = Self.percentDecoded(credentials[credentials.index(after: colon)...])
            } else if !credentials.isEmpty {
                password = Self.percentDecoded(credentials)
            }
        }
        var hostPort = rest
        if let slash = rest.firstIndex(of: "/") {
            hostPort = rest[..<slash]
            let db = rest[rest.index(after: slash)...]
            if !db.isEmpty {
                guard let n = Int(db), n >= 0 else { throw .invalidConfiguration("database '\(db)' is not a number") }
                database = n
            }
        }
        var host = "127.0.0.1"
        var port = 6379
        if hostPort.hasPrefix("[") , let close = hostPort.firstIndex(of: "]") {
            host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
            let after = hostPort[hostPort.index(after: close)...]
            if after.hasPrefix(":") { port = try Self.port(after.dropFirst()) }
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = String(hostPort[..<colon])
            port = try Self.port(hostPort[hostPort.index(after: colon)...])
        } else if !hostPort.isEmpty {
            host = String(hostPort)
        }
        if host.isEmpty { host = "127.0.0.1" }
        endpoint = .tcp(host: host, port: port)
    }

    private mutating func parseQuery(_ query: Substring) throws(RedisError) {
        for pair in query.split(separator: "&") {
            // Not `split`: it drops empty pieces, so "=" gave no key at all (and a trap).
            let key: Substring, value: Substring
            if let equals = pair.firstIndex(of: "=") {
                key = pair[..<equals]
                value = pair[pair.index(after: equals)...]
            } else {
                key = pair
                value = ""
            }
            guard !key.isEmpty else { throw .invalidConfiguration("a URL parameter has no name") }
            switch key {
            case "db":
                guard let n = Int(value), n >= 0 else { throw .invalidConfiguration("db '\(value)' is not a number") }
                database = n
            default:
                throw .invalidConfiguration("unknown URL parameter '\(key)'")
            }
        }
    }

    private static func port(_ text: Substring) throws(RedisError) -> Int {
        guard let p = Int(text), (1...65535).contains(p) else {
            throw .invalidConfiguration("port '\(text)' is not a number from 1 to 65535")
        }
        return p
    }

    private static func percentDecoded(_ text: Substring) -> String {
        var out: [UInt8] = []
        var bytes = Array(text.utf8)[...]
        while let b = bytes.popFirst() {
            if b == UInt8(ascii: "%"), bytes.count >= 2,
               let v = UInt8(String(decoding: bytes.prefix(2), as: UTF8.self), radix: 16) {
                out.append(v)
                bytes = bytes.dropFirst(2)
            } else {
                out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The endpoint and database, never the password.
    public var description: String {
        let auth = password == nil ? "" : "\(username ?? ""):***@"
        switch endpoint {
        case .tcp(let host, let port): return "redis://\(auth)\(host):\(port)/\(database)"
        case .unix(let path): return "unix://\(path)?db=\(database)"
        }
    }
}

/// Bounded exponential backoff between reconnection attempts.
public struct ReconnectPolicy: Sendable, Equatable {
    /// Seconds before the second attempt; each further wait doubles, up to `maxDelay`.
    public var initialDelay: Double
    public var maxDelay: Double
    /// Attempts per command before it fails with `RedisError.connection`; the next command tries again.
    public var maxAttempts: Int

    public init(initialDelay: Double = 0.05, maxDelay: Double = 2, maxAttempts: Int = 6) {
        self.initialDelay = initialDelay
        self.maxDelay = maxDelay
        self.maxAttempts = maxAttempts
    }

    /// The wait before attempt `attempt` (0-based; the first attempt does not wait).
    public func delay(beforeAttempt attempt: Int) -> Double {
        guard attempt > 0 else { return 0 }
        return min(maxDelay, initialDelay * Double(1 << min(attempt - 1, 30)))
    }
}
