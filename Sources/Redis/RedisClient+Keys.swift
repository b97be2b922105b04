/// Key and string commands.
extension RedisClient {
    public func get(_ key: some RedisArgument) throws(RedisError) -> [UInt8]? {
        try send(RedisCommand("GET", key)).bytes
    }

    public func set(_ key: some RedisArgument, _ value: some RedisArgument) throws(RedisError) {
        try send(RedisCommand("SET", key, value))
    }

    /// `SET key value NX PX ms`: true when this call created the key.
    public func setIfAbsent(_ key: some RedisArgument, _ value: some RedisArgument,
                            expiresInMilliseconds ms: Int) throws(RedisError) -> Bool {
        !(try send(RedisCommand("SET", key, value, "NX", "PX", ms)).isNull)
    }

    @discardableResult
    public func del(_ keys: [any RedisArgument]) throws(RedisError) -> Int64 {
        try integer(send(RedisCommand("DEL", arguments: keys)))
    }

    @discardableResult
    public func expire(_ key: some RedisArgument, seconds: Int) throws(RedisError) -> Bool {
        try integer(send(RedisCommand("EXPIRE", key, seconds))) == 1
    }

    /// Remaining time to live in milliseconds; -1 without expiry, -2 when the key is missing.
    public func pttl(_ key: some RedisArgument) throws(RedisError) -> Int64 {
        try integer(send(RedisCommand("PTTL", key)))
    }

    @discardableResult
    public func sadd(_ key: some RedisArgument, _ member: some RedisArgument) throws(RedisError) -> Int64 {
        try integer(send(RedisCommand("SADD", key, member)))
    }

    public func smembers(_ key: some RedisArgument) throws(RedisError) -> [[UInt8]] {
        try send(RedisCommand("SMEMBERS", key)).array?.compactMap(\.bytes) ?? []
    }

    @discardableResult
    public func srem(_ key: some RedisArgument, _ member: some RedisArgument) throws(RedisError) -> Int64 {
        try integer(send(RedisCommand("SREM", key, member)))
    }

    public func ping() throws(RedisError) -> Bool {
        try send(RedisCommand("PING")).string == "PONG"
    }
}
