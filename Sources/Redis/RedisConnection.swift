import CHiredis
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One hiredis context: it sends any command, pipelines many, and reconnects when the link breaks.
///
/// hiredis contexts are not thread-safe, so this class is deliberately not `Sendable`: the compiler
/// keeps each connection inside the one task or thread that made it. Every reply is copied into a
/// `RedisValue` and freed before a call returns; the context is freed on `close()` or `deinit`.
///
/// A context that has failed once cannot be used again (hiredis keeps its error), so a failure frees
/// it and the next command connects afresh, with the bounded backoff of `configuration.reconnect`.
public final class RedisConnection {
    public let configuration: RedisConfiguration
    private var context: UnsafeMutablePointer<redisContext>?
    /// How many times a broken link was replaced by a new one (for logs and tests).
    public private(set) var reconnectCount = 0
    private var hasConnectedBefore = false

    /// Connects at once; throws `RedisError.connection` when the server cannot be reached.
    public init(configuration: RedisConfiguration) throws(RedisError) {
        self.configuration = configuration
        Self.ignoreSIGPIPE
        try connect()
    }

    public convenience init(url: String) throws(RedisError) {
        try self.init(configuration: RedisConfiguration(url: url))
    }

    deinit { close() }

    public var isConnected: Bool { context != nil }

    /// Frees the context; the next command reconnects.
    public func close() {
        if let context { redisFree(context) }
        context = nil
    }

    /// Connects if not connected, trying up to `reconnect.maxAttempts` times with growing waits.
    public func connect() throws(RedisError) {
        guard context == nil else { return }
        var lastError = RedisError.connection("not attempted")
        for attempt in 0..<max(1, configuration.reconnect.maxAttempts) {
            let wait = configuration.reconnect.delay(beforeAttempt: attempt)
            if wait > 0 { usleep(useconds_t(wait * 1_000_000)) }
            do {
                try connectOnce()
                if hasConnectedBefore { reconnectCount += 1 }
                hasConnectedBefore = true
                return
            } catch {
                lastError = error
                if case .server = error { break }  // wrong password or database: waiting will not help
            }
        }
        throw lastError
    }

    private func connectOnce() throws(RedisError) {
        let timeout = Self.timeval(seconds: configuration.connectTimeout)
        let made: UnsafeMutablePointer<redisContext>?
        switch configuration.endpoint {
        case .tcp(let host, let port): made = redisConnectWithTimeout(host, Int32(port), timeout)
        case .unix(let path): made = redisConnectUnixWithTimeout(path, timeout)
        }
        guard let made else { throw .connection("hiredis could not allocate a context") }
        if made.pointee.err != 0 {
            let message = Self.errorString(made)
            redisFree(made)
            throw .connection("\(configuration): \(message)")
        }
        if case .tcp = configuration.endpoint { _ = redisEnableKeepAlive(made) }
        _ = redisSetTimeout(made, Self.timeval(seconds: configuration.commandTimeout))
        context = made
        do {
            if let password = configuration.password {
                if let username = configuration.username {
                    try send(RedisCommand("AUTH", username, password))
                } else {
                    try send(RedisCommand("AUTH", password))
                }
            }
            if configuration.database != 0 {
                try send(RedisCommand("SELECT", configuration.database))
            }
        } catch {
            close()
            throw error
        }
    }

    // MARK: Commands

    /// Sends one command and waits for its reply. An error reply is thrown as `RedisError.server`.
    @discardableResult
    public func send(_ command: RedisCommand) throws(RedisError) -> RedisValue {
        try pipeline(CollectionOfOne(command))[0].throwingOnError()
    }

    /// Writes every command, then reads every reply: one round trip for the lot.
    ///
    /// Error replies come back as `.error` values in their place, so one refused command does not
    /// hide the others' replies. A broken link throws `RedisError.connection`; which of the commands
    /// reached the server is then unknown, so callers resend only what is safe to repeat.
    public func pipeline<C: Collection>(_ commands: C) throws(RedisError) -> [RedisValue] where C.Element == RedisCommand {
        var buffer = RedisCommandBuffer(capacity: commands.reduce(0) { $0 + $1.bytes.count + 16 * $1.argumentCount + 8 })
        for command in commands { buffer.append(command) }
        return try send(buffer)
    }

    /// Writes the whole buffer at once (hiredis only copies it: nothing is formatted per command),
    /// then reads its replies, one per command, error replies in their place. A buffer with an
    /// invalid command (`invalidReason`) throws `RedisError.invalidCommand` before anything is
    /// written, so the link stays in step. `EVALSHA` answered `NOSCRIPT` is returned as it is;
    /// `pipeline(_:)` sends the `EVAL` form.
    public func send(_ buffer: RedisCommandBuffer) throws(RedisError) -> [RedisValue] {
        if let reason = buffer.invalidReason { throw .invalidCommand(reason) }
        guard !buffer.isEmpty else { return [] }
        try connect()
        try dropIfPeerClosed()
        guard let context else { throw .connection("not connected") }
        if append(buffer, to: context) != REDIS_OK { throw fail(context) }
        var replies: [RedisValue] = []
        replies.reserveCapacity(buffer.count)
        for _ in 0..<buffer.count {
            replies.append(try readReply())
        }
        return replies
    }

    /// Sends a command that the server may hold for up to `seconds` (`BLMOVE`, `BLPOP`): the socket
    /// timeout is raised for this call so that the server's own timeout always answers first.
    @discardableResult
    public func send(_ command: RedisCommand, blockingFor seconds: Double) throws(RedisError) -> RedisValue {
        try connect()
        try dropIfPeerClosed()  // first: a new context would come with the ordinary timeout
        guard let context else { throw .connection("not connected") }
        _ = redisSetTimeout(context, Self.timeval(seconds: seconds + configuration.commandTimeout))
        defer {
            if let current = self.context {
                _ = redisSetTimeout(current, Self.timeval(seconds: configuration.commandTimeout))
            }
        }
        return try send(command)
    }

    // MARK: Waits read later

    public func startWait(_ command: RedisCommand) throws(RedisError) -> Int32 {
        var buffer = RedisCommandBuffer()
        buffer.append(command)
        if let reason = buffer.invalidReason { throw .invalidCommand(reason) }
        try connect()
        try dropIfPeerClosed()
        guard let context else { throw .connection("not connected") }
        if append(buffer, to: context) != REDIS_OK { throw fail(context) }
        // Written whole now: the reply is only read once the socket is readable.
        var done: Int32 = 0
        while done == 0 {
            if redisBufferWrite(context, &done) != REDIS_OK { throw fail(context) }
        }
        return context.pointee.fd
    }

    public func finishWait() throws(RedisError) -> RedisValue {
        try readReply()
    }

    // MARK: Lower level, for the subscriber

    /// Writes a command without waiting for a reply (it is flushed by the next read).
    func appendOnly(_ command: RedisCommand) throws(RedisError) {
        var buffer = RedisCommandBuffer()
        buffer.append(command)
        if let reason = buffer.invalidReason { throw .invalidCommand(reason) }
        try connect()
        guard let context else { throw .connection("not connected") }
        if append(buffer, to: context) != REDIS_OK { throw fail(context) }
    }

    /// Reads the next reply, blocking up to the command timeout.
    func readReply() throws(RedisError) -> RedisValue {
        guard let context else { throw .connection("not connected") }
        var raw: UnsafeMutableRawPointer?
        guard redisGetReply(context, &raw) == REDIS_OK, let raw else { throw fail(context) }
        defer { freeReplyObject(raw) }
        return Self.value(of: raw.assumingMemoryBound(to: redisReply.self))
    }

    /// Reads the next reply if one arrives within `seconds`, else returns nil and keeps the link.
    /// Polls the socket first, because a hiredis read that times out leaves the context unusable.
    func readReply(waitingAtMost seconds: Double) throws(RedisError) -> RedisValue? {
        try connect()
        guard let context else { throw .connection("not connected") }
        var raw: UnsafeMutableRawPointer?
        guard redisGetReplyFromReader(context, &raw) == REDIS_OK else { throw fail(context) }
        if let raw {
            defer { freeReplyObject(raw) }
            return Self.value(of: raw.assumingMemoryBound(to: redisReply.self))
        }
        var pfd = pollfd(fd: context.pointee.fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&pfd, 1, Int32(max(0, seconds * 1000)))
        if ready == 0 { return nil }
        return try readReply()
    }

    // MARK: Helpers

    private func append(_ buffer: RedisCommandBuffer, to context: UnsafeMutablePointer<redisContext>) -> Int32 {
        buffer.bytes.withUnsafeBytes { raw in
            // A valid, non-empty buffer has bytes; a nil base would still be refused, not trap.
            guard let base = raw.baseAddress else { return REDIS_ERR }
            return redisAppendFormattedCommand(context, base.assumingMemoryBound(to: CChar.self), raw.count)
        }
    }

    /// A server restarted while we were idle has closed our socket: it reads as ready with nothing
    /// expected. Finding that before writing means the next command is not lost to a dead link.
    private func dropIfPeerClosed() throws(RedisError) {
        guard let context else { return }
        var pfd = pollfd(fd: context.pointee.fd, events: Int16(POLLIN), revents: 0)
        if poll(&pfd, 1, 0) > 0 {
            close()
            try connect()
        }
    }

    /// Frees a failed context and returns the error to throw.
    private func fail(_ failed: UnsafeMutablePointer<redisContext>) -> RedisError {
        let message = failed.pointee.err != 0 ? Self.errorString(failed) : "connection lost"
        close()
        return .connection(message)
    }

    private static func errorString(_ context: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: context.pointee.errstr) { raw in
            let bytes = raw.prefix(while: { $0 != 0 })
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    static func value(of reply: UnsafePointer<redisReply>) -> RedisValue {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STRING:
            return .bulk(r.len == 0 ? [] : Array(UnsafeRawBufferPointer(start: r.str, count: r.len)))
        case REDIS_REPLY_INTEGER:
            return .integer(Int64(r.integer))
        case REDIS_REPLY_NIL:
            return .null
        case REDIS_REPLY_STATUS:
            return .status(String(decoding: UnsafeRawBufferPointer(start: r.str, count: r.len), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            return .error(String(decoding: UnsafeRawBufferPointer(start: r.str, count: r.len), as: UTF8.self))
        case REDIS_REPLY_ARRAY:
            var elements: [RedisValue] = []
            elements.reserveCapacity(r.elements)
            for i in 0..<r.elements {
                if let element = r.element[i] { elements.append(value(of: element)) } else { elements.append(.null) }
            }
            return .array(elements)
        default:
            return .error("unknown reply type \(r.type)")
        }
    }

    static func timeval(seconds: Double) -> timeval {
        let whole = Int(seconds)
        return Glibc.timeval(tv_sec: whole, tv_usec: Int((seconds - Double(whole)) * 1_000_000))
    }

    /// hiredis writes with write(2): a peer that closed would kill the process with SIGPIPE.
    private static let ignoreSIGPIPE: Void = { signal(SIGPIPE, SIG_IGN) }()
}

@available(*, unavailable, message: "a hiredis context belongs to one task; create one connection per task")
extension RedisConnection: Sendable {}
