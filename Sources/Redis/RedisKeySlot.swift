/// The Redis Cluster hash slot of a key: CRC16 (XMODEM) of the key, or of its hash tag, mod 16384.
///
/// A client has to compute this exactly as the servers do, or every command would bounce with
/// `MOVED`. The hash-tag rule is the cluster specification's, byte for byte: the first `{`, then the
/// first `}` after it; when at least one byte lies between them, only those bytes are hashed
/// (`{user1000}.following` hashes `user1000`; `foo{}{bar}` hashes the whole key, since its first
/// tag is empty; `foo{{bar}}zap` hashes `{bar`; `foo{bar}{zap}` hashes `bar`). This is what lets our
/// multi-key commands work on a cluster: keys named `P:{k}:...` all live in the slot of `k`.
public enum RedisKeySlot {
    /// Slots in a Redis Cluster.
    public static let count = 16384

    /// The slot of a key given as any Redis argument (string, bytes, number).
    public static func slot(of key: some RedisArgument) -> Int {
        var bytes: [UInt8] = []
        key.appendRedisBytes(to: &bytes)
        return slot(ofBytes: bytes)
    }

    /// The slot of a key's raw bytes.
    public static func slot<Bytes: Collection<UInt8>>(ofBytes key: Bytes) -> Int {
        Int(crc16(hashedPart(of: key)) & UInt16(count - 1))
    }

    /// The bytes that are hashed: the hash tag when the key has a non-empty one, else the whole key.
    public static func hashedPart<Bytes: Collection<UInt8>>(of key: Bytes) -> Bytes.SubSequence {
        guard let open = key.firstIndex(of: UInt8(ascii: "{")) else { return key[...] }
        let afterOpen = key.index(after: open)
        guard let close = key[afterOpen...].firstIndex(of: UInt8(ascii: "}")), close != afterOpen else {
            return key[...]
        }
        return key[afterOpen..<close]
    }

    /// CRC16/XMODEM (polynomial 0x1021, initial value 0, no reflection), as Redis' crc16.c.
    public static func crc16<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc = (crc << 8) ^ table[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ byte)]
        }
        return crc
    }

    private static let table: [UInt16] = (0..<256).map { index in
        var crc = UInt16(index) << 8
        for _ in 0..<8 {
            crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1
        }
        return crc
    }
}
