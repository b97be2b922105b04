import Crypto

/// The hash chain over ledger entries.
///
/// `hash(n) = SHA256(hash(n-1) || canonical(n))`, one global chain in id order, starting from
/// 32 zero bytes. Because each hash covers the previous one and the entry's own id, `verify`
/// detects an edited entry (its hash no longer matches), a deleted one (a gap in the dense ids,
/// and the next hash no longer matches) and reordered ones, even when they were written around
/// the append-only triggers. It is not a signature: someone able to rewrite the whole file can
/// recompute the chain; it catches partial edits, bugs and restores of mixed files.
///
/// Canonical bytes, version 1: the tag `TLE1`, then integers as 8-byte big-endian, strings as a
/// 4-byte big-endian length and their UTF-8 bytes, optionals as a 0/1 byte then the value, in
/// this order: id, account id, user id, created ms, kind, operation type, amount, balance
/// before, balance after, job id?, refund-of entry id?, metadata?.
struct EntryHasher {
    static let genesis = [UInt8](repeating: 0, count: 32)

    private var buffer: [UInt8] = []

    struct Fields {
        var id: Int64
        var accountId: Int64
        var userId: String
        var createdMs: Int64
        var kind: Int64
        var operationType: String
        var amount: Int64
        var balanceBefore: Int64
        var balanceAfter: Int64
        var jobId: String?
        var refundOf: Int64?
        var metadata: String?
    }

    mutating func hash(previous: [UInt8], _ f: Fields) -> [UInt8] {
        buffer.removeAll(keepingCapacity: true)
        buffer.reserveCapacity(128)
        int32(0x544C_4531)  // "TLE1"
        int(f.id); int(f.accountId); string(f.userId); int(f.createdMs); int(f.kind)
        string(f.operationType); int(f.amount); int(f.balanceBefore); int(f.balanceAfter)
        if let v = f.jobId { buffer.append(1); string(v) } else { buffer.append(0) }
        if let v = f.refundOf { buffer.append(1); int(v) } else { buffer.append(0) }
        if let v = f.metadata { buffer.append(1); string(v) } else { buffer.append(0) }
        // Raw buffers in and out: the `DataProtocol` overloads and `Array(digest)` walk their
        // input generically, which cost more than the SHA-256 blocks themselves.
        var h = SHA256()
        previous.withUnsafeBytes { h.update(bufferPointer: $0) }
        buffer.withUnsafeBytes { h.update(bufferPointer: $0) }
        return h.finalize().withUnsafeBytes { [UInt8]($0) }
    }

    // Big-endian integers appended whole (not byte by byte): one capacity check each.
    private mutating func int(_ v: Int64) {
        withUnsafeBytes(of: UInt64(bitPattern: v).bigEndian) { buffer.append(contentsOf: $0) }
    }

    private mutating func int32(_ v: UInt32) {
        withUnsafeBytes(of: v.bigEndian) { buffer.append(contentsOf: $0) }
    }

    private mutating func string(_ s: String) {
        int32(UInt32(truncatingIfNeeded: s.utf8.count))
        var s = s
        s.withUTF8 { buffer.append(contentsOf: $0) }
    }
}
