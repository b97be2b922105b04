/// The Redis a program talks to: one server or a Redis Cluster, named by its URL
/// (`redis://`, `unix://`, or `redis-cluster://host:port[,host:port...]`). `connect()` makes the
/// matching `RedisClient`, so the code that uses it is the same for both.
public enum RedisTarget: Sendable, Equatable, CustomStringConvertible {
    case single(RedisConfiguration)
    case cluster(RedisClusterConfiguration)

    /// A cluster for a `redis-cluster://` URL, else one server.
    public init(url: String) throws(RedisError) {
        if RedisClusterConfiguration.isClusterURL(url) {
            self = .cluster(try RedisClusterConfiguration(url: url))
        } else {
            self = .single(try RedisConfiguration(url: url))
        }
    }

    /// A new client: a connection to the server, or a cluster client that has read the slot map.
    /// Throws when no server or seed answers.
    public func connect() throws(RedisError) -> any RedisClient {
        switch self {
        case .single(let configuration): return try RedisConnection(configuration: configuration)
        case .cluster(let configuration): return try RedisCluster(configuration: configuration)
        }
    }

    public var isCluster: Bool {
        if case .cluster = self { return true }
        return false
    }

    /// The user every node shares (set from the environment or a file after parsing the URL).
    public var username: String? {
        get {
            switch self {
            case .single(let c): return c.username
            case .cluster(let c): return c.username
            }
        }
        set {
            switch self {
            case .single(var c): c.username = newValue; self = .single(c)
            case .cluster(var c): c.username = newValue; self = .cluster(c)
            }
        }
    }

    /// The password every node shares (set from the environment or a file after parsing the URL).
    public var password: String? {
        get {
            switch self {
            case .single(let c): return c.password
            case .cluster(let c): return c.password
            }
        }
        set {
            switch self {
            case .single(var c): c.password = newValue; self = .single(c)
            case .cluster(var c): c.password = newValue; self = .cluster(c)
            }
        }
    }

    /// How long a command's reply may take, in seconds, past any wait the command asks for.
    public var commandTimeout: Double {
        switch self {
        case .single(let c): return c.commandTimeout
        case .cluster(let c): return c.commandTimeout
        }
    }

    /// The same target with timeouts of at most `seconds` and one connection attempt per command:
    /// for callers that must not block longer than they can afford (the lease keeper, a probe),
    /// and try again on their own schedule.
    public func impatient(seconds: Double) -> RedisTarget {
        switch self {
        case .single(var c):
            c.connectTimeout = min(c.connectTimeout, seconds)
            c.commandTimeout = min(c.commandTimeout, seconds)
            c.reconnect.maxAttempts = 1
            return .single(c)
        case .cluster(var c):
            c.connectTimeout = min(c.connectTimeout, seconds)
            c.commandTimeout = min(c.commandTimeout, seconds)
            c.retry.maxAttempts = 1
            return .cluster(c)
        }
    }

    /// Where a `RedisSubscriber` listens: the server, or a master of the cluster (in Redis 7 a
    /// message published on any node reaches subscribers on every node).
    public func subscriberConfiguration() throws(RedisError) -> RedisConfiguration {
        switch self {
        case .single(let configuration): return configuration
        case .cluster(let configuration): return try RedisCluster(configuration: configuration).subscriberConfiguration()
        }
    }

    /// Where to `SSUBSCRIBE` to `channel`: the server itself, or on a cluster the master that
    /// serves the channel's slot (read from a fresh slot map).
    public func shardSubscriberConfiguration(channel: some RedisArgument) throws(RedisError) -> RedisConfiguration {
        switch self {
        case .single(let configuration): return configuration
        case .cluster(let configuration): return try RedisCluster(configuration: configuration).shardSubscriberConfiguration(channel: channel)
        }
    }

    /// The URL without the password.
    public var description: String {
        switch self {
        case .single(let c): return c.description
        case .cluster(let c): return c.description
        }
    }
}
