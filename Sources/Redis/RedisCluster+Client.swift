/// `RedisCluster` as a `RedisClient`: each command is routed by the key `RedisCommandRoute` reads
/// from it, so code written for one server runs unchanged on a cluster, as long as every
/// multi-key command keeps its keys in one slot (`P:{k}:...`).
///
/// Scripts work per node: `evalsha` and `pipeline(_:)` send `EVALSHA` to the master of its first
/// key, and that master's `NOSCRIPT` makes them send `EVAL` there, which caches the script on that
/// node.
extension RedisCluster: RedisClient {
    @discardableResult
    public func send(_ command: RedisCommand) throws(RedisError) -> RedisValue {
        try execute([command], slots: [Self.slot(routing: command)], blockingFor: nil)[0].throwingOnError()
    }

    @discardableResult
    public func send(_ command: RedisCommand, blockingFor seconds: Double) throws(RedisError) -> RedisValue {
        try execute([command], slots: [Self.slot(routing: command)], blockingFor: seconds)[0].throwingOnError()
    }

    public func pipeline<C: Collection>(_ commands: C) throws(RedisError) -> [RedisValue] where C.Element == RedisCommand {
        let commands = Array(commands)
        return try execute(commands, slots: commands.map(Self.slot(routing:)), blockingFor: nil)
    }

    /// Each master is sent its commands as one buffer of their own (`RedisConnection.pipeline`),
    /// in their order: the commands are read back from the buffer to be routed by their keys, at
    /// the cost of one more copy than on a single server.
    public func send(_ buffer: RedisCommandBuffer) throws(RedisError) -> [RedisValue] {
        if let reason = buffer.invalidReason { throw .invalidCommand(reason) }
        let commands = buffer.commands
        guard commands.count == buffer.count else { throw .invalidCommand("a command of the buffer could not be read back") }
        return try execute(commands, slots: commands.map(Self.slot(routing:)), blockingFor: nil)
    }

    /// The slot of the command's key; slot 0 for a command without one (any master would do, and a
    /// fixed one keeps such commands on one link).
    static func slot(routing command: RedisCommand) -> Int {
        RedisCommandRoute(command).slot ?? 0
    }
}
