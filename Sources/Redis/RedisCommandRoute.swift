/// Where a Redis Cluster sends a command, read from the command itself: the one place where the
/// cluster client learns a command's key from its name and arguments.
///
/// `RedisCluster.send(_:key:)` takes the routing key from its caller; code written against
/// `RedisClient` (the worker, the command line) does not name keys, so `RedisCluster`'s
/// conformance routes each command by this. The rules cover the commands this project sends (the
/// table in `RedisCommandRouteTests`) and the usual shapes of the others:
/// - `EVAL`/`EVALSHA`/`FCALL` (and their `_RO` forms): the first key when `numkeys` > 0, else any
///   node (a script without keys touches no data of a slot);
/// - `XREAD`/`XREADGROUP`: the first key after `STREAMS`;
/// - `OBJECT`, `MEMORY`, `XINFO`, `XGROUP`: a subcommand first, so the key is the argument after it;
/// - commands about the server or connection (`PING`, `SCRIPT LOAD`, `CLUSTER ...`, `INFO`): any node;
/// - every other command: its first argument. `PUBLISH` is routed by its channel like a key: any
///   node would deliver it in Redis 7, and one fixed node per channel keeps the messages of one
///   publisher on one path, hence in order.
/// A multi-key command is routed by its first key only, so its keys must share a slot (hash tags);
/// otherwise the server answers `CROSSSLOT`.
public enum RedisCommandRoute: Sendable, Hashable {
    /// The master that serves this key's slot.
    case key([UInt8])
    /// Any master: the command reads or writes no key.
    case anyNode

    public init(_ command: RedisCommand) {
        let name = command.name.uppercased()
        let keyIndex: Int?
        switch name {
        case "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO":
            let numkeys = command.argument(2).flatMap { Int(String(decoding: $0, as: UTF8.self)) } ?? 0
            keyIndex = numkeys > 0 ? 3 : nil
        case "XREAD", "XREADGROUP":
            keyIndex = (1..<command.argumentCount).first {
                command.argument($0).map { String(decoding: $0, as: UTF8.self).uppercased() } == "STREAMS"
            }.map { $0 + 1 }
        case "OBJECT", "MEMORY", "XINFO", "XGROUP":
            keyIndex = 2
        case _ where Self.keyless.contains(name):
            keyIndex = nil
        default:
            keyIndex = 1
        }
        if let keyIndex, let key = command.argument(keyIndex) {
            self = .key(Array(key))
        } else {
            self = .anyNode
        }
    }

    /// The key's slot, or nil for any node.
    public var slot: Int? {
        if case .key(let key) = self { return RedisKeySlot.slot(ofBytes: key) }
        return nil
    }

    /// Commands that name no key: about the server, the connection or the cluster.
    static let keyless: Set<String> = [
        "PING", "ECHO", "INFO", "SCRIPT", "FUNCTION", "CLUSTER", "COMMAND", "CONFIG", "DBSIZE", "TIME", "AUTH",
        "HELLO", "CLIENT", "SELECT", "ASKING", "READONLY", "READWRITE", "ROLE", "LASTSAVE", "SLOWLOG", "LATENCY",
        "ACL", "MULTI", "EXEC", "DISCARD", "WAIT", "QUIT", "RESET", "FLUSHALL", "FLUSHDB", "RANDOMKEY", "SCAN",
        "KEYS", "SAVE", "BGSAVE", "BGREWRITEAOF", "DEBUG", "MODULE", "LOLWUT", "SWAPDB", "FAILOVER", "REPLICAOF",
    ]
}
