/// One node of a Redis Cluster, by the address clients use to reach it.
public struct RedisClusterNode: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `host:port`, with an IPv6 host in brackets.
    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

/// How to reach a Redis Cluster: its seed nodes, the credentials every node shares, and how hard to
/// try when the topology changes.
///
/// Accepted URL: `redis-cluster://[[user]:password@]host:port[,host:port...]`, with user and password
/// exactly as in a single-server `redis://` URL (percent-escapes decoded; never required, since the
/// password can be set afterwards from the environment or a file). The seeds are only where the
/// client first reads the slot map; every other node is learned from it. A cluster has database 0
/// only, so a path other than `/` or `/0` is refused.
public struct RedisClusterConfiguration: Sendable, Equatable, CustomStringConvertible {
    public static let scheme = "redis-cluster://"

    public var seeds: [RedisClusterNode]
    public var username: String?
    public var password: String?
    /// Seconds allowed to open a socket to one node.
    public var connectTimeout: Double
    /// Seconds allowed for one reply from one node.
    public var commandTimeout: Double
    /// Waits between attempts when no node serves a slot yet: a node that refuses connections, a
    /// cluster that answers `CLUSTERDOWN` or `TRYAGAIN` while a failover or migration settles. The
    /// default gives up after about 6.5 s; a failover takes about `cluster-node-timeout` plus a second.
    public var retry: ReconnectPolicy
    /// `MOVED` and `ASK` redirections followed for one command before its error is returned.
    public var maxRedirections: Int

    public init(
        seeds: [RedisClusterNode],
        username: String? = nil,
        password: String? = nil,
        connectTimeout: Double = 2,
        commandTimeout: Double = 5,
        retry: ReconnectPolicy = .init(initialDelay: 0.1, maxDelay: 1, maxAttempts: 10),
        maxRedirections: Int = 5
    ) {
        self.seeds = seeds
        self.username = username
        self.password = password
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.retry = retry
        self.maxRedirections = maxRedirections
    }

    /// Whether `url` names a cluster (so callers can pick a `RedisCluster` or a `RedisConnection`).
    public static func isClusterURL(_ url: String) -> Bool { url.hasPrefix(scheme) }

    public init(url: String) throws(RedisError) {
        self.init(seeds: [])
        guard url.hasPrefix(Self.scheme) else {
            throw .invalidConfiguration("a cluster URL starts with \(Self.scheme)")
        }
        var rest = Substring(url.dropFirst(Self.scheme.count))
        if rest.contains("?") {
            throw .invalidConfiguration("a cluster URL takes no parameters")
        }
        if let at = rest.lastIndex(of: "@") {
            // The credentials follow the single-server rules exactly: parse them with that parser.
            let single = try RedisConfiguration(url: "redis://\(rest[..<at])@127.0.0.1")
            username = single.username
            password = single.password
            rest = rest[rest.index(after: at)...]
        }
        if let slash = rest.firstIndex(of: "/") {
            let path = rest[rest.index(after: slash)...]
            guard path.isEmpty || path == "0" else {
                throw .invalidConfiguration("a Redis Cluster has only database 0, not '\(path)'")
            }
            rest = rest[..<slash]
        }
        for item in rest.split(separator: ",", omittingEmptySubsequences: false) {
            seeds.append(try Self.node(item))
        }
    }

    private static func node(_ text: Substring) throws(RedisError) -> RedisClusterNode {
        var host: Substring
        var port = 6379
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                throw .invalidConfiguration("seed '\(text)' has an unclosed IPv6 bracket")
            }
            host = text[text.index(after: text.startIndex)..<close]
            let after = text[text.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw .invalidConfiguration("seed '\(text)' is not host:port") }
                port = try Self.port(after.dropFirst(), seed: text)
            }
        } else if let colon = text.firstIndex(of: ":") {
            host = text[..<colon]
            port = try Self.port(text[text.index(after: colon)...], seed: text)
        } else {
            host = text
        }
        guard !host.isEmpty else {
            throw .invalidConfiguration("every seed needs a host: '\(text)' in a comma-separated host:port list")
        }
        return RedisClusterNode(host: String(host), port: port)
    }

    private static func port(_ text: Substring, seed: Substring) throws(RedisError) -> Int {
        guard let p = Int(text), (1...65535).contains(p) else {
            throw .invalidConfiguration("seed '\(seed)': port '\(text)' is not a number from 1 to 65535")
        }
        return p
    }

    /// The configuration of a connection to one node: the shared credentials and timeouts, one
    /// connection attempt (the cluster client does its own retries, re-reading the slot map first).
    public func nodeConfiguration(_ node: RedisClusterNode) -> RedisConfiguration {
        RedisConfiguration(
            endpoint: .tcp(host: node.host, port: node.port),
            username: username, password: password, database: 0,
            connectTimeout: connectTimeout, commandTimeout: commandTimeout,
            reconnect: ReconnectPolicy(initialDelay: retry.initialDelay, maxDelay: retry.maxDelay, maxAttempts: 1))
    }

    /// The seeds, never the password.
    public var description: String {
        let auth = password == nil ? "" : "\(username ?? ""):***@"
        return Self.scheme + auth + seeds.map(\.description).joined(separator: ",")
    }
}
