/// Publishing; receiving is `RedisSubscriber`'s, on a connection of its own.
extension RedisClient {
    /// `PUBLISH channel message`; returns how many subscribers received it.
    @discardableResult
    public func publish(_ channel: some RedisArgument, _ message: some RedisArgument) throws(RedisError) -> Int64 {
        try integer(send(RedisCommand("PUBLISH", channel, message)))
    }
}
