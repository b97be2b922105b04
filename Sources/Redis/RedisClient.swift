/// What code that talks to Redis needs from a link, whether it is one server (`RedisConnection`)
/// or a Redis Cluster (`RedisCluster`, which routes each command by its key: `RedisCommandRoute`).
///
/// The command families (`+Lists`, `+Keys`, `+Scripting`, `+PubSub`) are written against this
/// protocol, so the worker and the command line are the same code on both. Like its conformers,
/// a client belongs to the one task or thread that made it.
public protocol RedisClient: AnyObject {
    /// Sends one command and waits for its reply; an error reply is thrown (`RedisError.server`,
    /// or `.crossSlot`).
    @discardableResult
    func send(_ command: RedisCommand) throws(RedisError) -> RedisValue

    /// Sends a command the server may hold for up to `seconds` (`BLMOVE`, `BRPOP`): the socket
    /// timeout is raised for the wait.
    @discardableResult
    func send(_ command: RedisCommand, blockingFor seconds: Double) throws(RedisError) -> RedisValue

    /// Sends many commands and returns their replies in order, error replies in their place. A
    /// broken link throws `RedisError.connection`: which commands ran is then unknown, so callers
    /// resend only what is safe to repeat.
    func pipeline<C: Collection>(_ commands: C) throws(RedisError) -> [RedisValue] where C.Element == RedisCommand

    /// Sends the commands of a RESP buffer and returns their replies in order, error replies
    /// (`NOSCRIPT` included) in their place; a cluster sends each master its commands as one
    /// buffer. Callers use `pipeline(_:)`, which also runs scripts the server had not cached.
    func send(_ buffer: RedisCommandBuffer) throws(RedisError) -> [RedisValue]

    /// Writes a command whose reply comes later, a blocking wait (`BLMOVE`), and returns the
    /// descriptor of the socket the reply arrives on: one thread can then `poll(2)` the waits of
    /// many connections rather than block a thread on each. Until `finishWait()` reads the reply,
    /// nothing else may be sent on this client.
    func startWait(_ command: RedisCommand) throws(RedisError) -> Int32

    /// Reads the reply of the command `startWait(_:)` wrote (at once when its socket is readable).
    /// An error reply is returned in its place, not thrown.
    func finishWait() throws(RedisError) -> RedisValue

    /// How many times a broken link was replaced by a new one (for logs and metrics).
    var reconnectCount: Int { get }

    /// Closes the link or links; the next command reconnects.
    func close()
}

extension RedisClient {
    @discardableResult
    public func send(_ name: String, _ arguments: any RedisArgument...) throws(RedisError) -> RedisValue {
        try send(RedisCommand(name, arguments: arguments))
    }

    func integer(_ value: RedisValue) throws(RedisError) -> Int64 {
        guard let n = value.int else { throw .unexpectedReply("expected an integer, got \(value)") }
        return n
    }
}

extension RedisConnection: RedisClient {}
