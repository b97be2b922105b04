/// Publishing; receiving is `RedisSubscriber`'s, on a connection of its own.
extension RedisClient {
    /// `PUBLISH channel message`; returns how many subscribers received it.
    @discardableResult
    public func publish(_ channel: some RedisArgument, _ message: some RedisArgument) throws(RedisError) -> Int64 {
        try integer(send(RedisCommand("PUBLISH", channel, message)))
    }

    /// `SPUBLISH shardchannel message` (Redis 7): sharded pub/sub, whose channel belongs to a slot
    /// like a key, so on a cluster the message stays within the shard that serves it instead of
    /// crossing the bus to every node. `RedisCluster` routes it by the channel (its first
    /// argument); subscribers `SSUBSCRIBE` on that shard (`RedisSubscriber.ssubscribe`). Returns
    /// how many subscribers of that shard received it.
    @discardableResult
    public func spublish(_ channel: some RedisArgument, _ message: some RedisArgument) throws(RedisError) -> Int64 {
        try integer(send(RedisCommand("SPUBLISH", channel, message)))
    }
}
