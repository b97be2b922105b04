/// List commands: the reliable queue is built from these.
public enum ListEnd: String, Sendable {
    case left = "LEFT"
    case right = "RIGHT"
}

extension RedisClient {
    /// `LPUSH key value...`; returns the new length.
    @discardableResult
    public func lpush(_ key: some RedisArgument, _ values: [any RedisArgument]) throws(RedisError) -> Int64 {
        try integer(send(RedisCommand("LPUSH", arguments: [key] + values)))
    }

    @discardableResult
    public func lpush(_ key: some RedisArgument, _ value: some RedisArgument) throws(RedisError) -> Int64 {
        try integer(send(RedisCommand("LPUSH", key, value)))
    }

    /// `LMOVE source destination from to`: nil when the source is empty.
    public func lmove(_ source: some RedisArgument, _ destination: some RedisArgument,
                      from: ListEnd = .right, to: ListEnd = .left) throws(RedisError) -> [UInt8]? {
        try send(RedisCommand("LMOVE", source, destination, from.rawValue, to.rawValue)).bytes
    }

    /// `BLMOVE source destination from to timeout`: waits up to `timeout` seconds for an element;
    /// nil when none came.
    public func blmove(_ source: some RedisArgument, _ destination: some RedisArgument,
                       from: ListEnd = .right, to: ListEnd = .left, timeout: Double) throws(RedisError) -> [UInt8]? {
        try send(RedisCommand("BLMOVE", source, destination, from.rawValue, to.rawValue, timeout),
                 blockingFor: timeout).bytes
    }

    /// `LRANGE key start stop`.
    public func lrange(_ key: some RedisArgument, _ start: Int, _ stop: Int) throws(RedisError) -> [[UInt8]] {
        guard let items = try send(RedisCommand("LRANGE", key, start, stop)).array else {
            throw .unexpectedReply("LRANGE did not answer an array")
        }
        return items.compactMap(\.bytes)
    }

    public func llen(_ key: some RedisArgument) throws(RedisError) -> Int64 {
        try integer(send(RedisCommand("LLEN", key)))
    }

    /// `LREM key count value`; returns how many were removed.
    @discardableResult
    public func lrem(_ key: some RedisArgument, count: Int, _ value: some RedisArgument) throws(RedisError) -> Int64 {
        try integer(send(RedisCommand("LREM", key, count, value)))
    }

    public func ltrim(_ key: some RedisArgument, _ start: Int, _ stop: Int) throws(RedisError) {
        try send(RedisCommand("LTRIM", key, start, stop))
    }
}
