/// Stream commands: the events stream (`P:events`) is written with `XADD` and followed with
/// `XREAD`. Fields and values are bytes, so any value (binary too) survives.
public struct StreamEntry: Sendable, Equatable {
    /// The entry id, `<ms>-<seq>`.
    public var id: String
    public var fields: [(key: [UInt8], value: [UInt8])]

    public init(id: String, fields: [(key: [UInt8], value: [UInt8])]) {
        self.id = id
        self.fields = fields
    }

    /// The value of a field whose name is `key`, as text.
    public func value(_ key: String) -> String? {
        let k = Array(key.utf8)
        return fields.first { $0.key == k }.map { String(decoding: $0.value, as: UTF8.self) }
    }

    public static func == (a: StreamEntry, b: StreamEntry) -> Bool {
        a.id == b.id && a.fields.count == b.fields.count
            && zip(a.fields, b.fields).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }
}

extension RedisClient {
    /// `XADD key [MAXLEN ~ n] * field value ...`; returns the new entry's id.
    @discardableResult
    public func xadd(_ key: some RedisArgument, approximateMaxLength: Int? = nil,
                     _ fields: [(any RedisArgument, any RedisArgument)]) throws(RedisError) -> String {
        var args: [any RedisArgument] = [key]
        if let n = approximateMaxLength { args += ["MAXLEN", "~", n] }
        args.append("*")
        for (k, v) in fields { args += [k, v] }
        guard let id = try send(RedisCommand("XADD", arguments: args)).string else {
            throw .unexpectedReply("XADD did not answer an id")
        }
        return id
    }

    /// `XLEN key`.
    public func xlen(_ key: some RedisArgument) throws(RedisError) -> Int64 {
        try integer(send(RedisCommand("XLEN", key)))
    }

    /// `XRANGE key start end [COUNT n]`.
    public func xrange(_ key: some RedisArgument, _ start: String = "-", _ end: String = "+",
                       count: Int? = nil) throws(RedisError) -> [StreamEntry] {
        var args: [any RedisArgument] = [key, start, end]
        if let count { args += ["COUNT", count] }
        return try Self.entries(send(RedisCommand("XRANGE", arguments: args)))
    }

    /// `XREAD [COUNT n] BLOCK ms STREAMS key id`: entries after `id` (`$` for only new ones),
    /// waiting up to `blockMilliseconds`; empty when none came.
    public func xread(_ key: some RedisArgument, after id: String, count: Int? = nil,
                      blockMilliseconds: Int) throws(RedisError) -> [StreamEntry] {
        var args: [any RedisArgument] = []
        if let count { args += ["COUNT", count] }
        args += ["BLOCK", blockMilliseconds, "STREAMS", key, id]
        let reply = try send(RedisCommand("XREAD", arguments: args), blockingFor: Double(blockMilliseconds) / 1000)
        guard case .array(let streams) = reply else { return [] }  // null: nothing came
        var all: [StreamEntry] = []
        for stream in streams {
            guard let pair = stream.array, pair.count == 2 else { throw .unexpectedReply("XREAD answered a malformed stream") }
            all += try Self.entries(pair[1])
        }
        return all
    }

    static func entries(_ reply: RedisValue) throws(RedisError) -> [StreamEntry] {
        guard let items = reply.array else { throw .unexpectedReply("expected an array of stream entries") }
        var entries: [StreamEntry] = []
        for item in items {
            guard let pair = item.array, pair.count == 2, let id = pair[0].string, let flat = pair[1].array else {
                throw .unexpectedReply("malformed stream entry")
            }
            var fields: [(key: [UInt8], value: [UInt8])] = []
            var i = 0
            while i + 1 < flat.count {
                fields.append((flat[i].bytes ?? [], flat[i + 1].bytes ?? []))
                i += 2
            }
            entries.append(StreamEntry(id: id, fields: fields))
        }
        return entries
    }
}
