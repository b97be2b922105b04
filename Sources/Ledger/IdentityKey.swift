import Foundation

/// An identity (user, job, operation type, hold, grant, monitor or payment id, tier name) as a
/// dictionary or set key, equal only when its UTF-8 bytes are.
///
/// Why: Swift's `String` compares and hashes by canonical equivalence, so NFC `"\u{e9}"` and NFD
/// `"e\u{301}"` would be one key in memory while SQLite (BINARY collation) and the partition hash
/// (CRC-32 of the UTF-8) see two: one user's lagging row would answer for the other. Identity
/// is bytes, in memory as on disk.
public struct IdentityKey: Hashable, Sendable, CustomStringConvertible {
    public let text: String

    public init(_ text: String) { self.text = text }

    public static func == (a: IdentityKey, b: IdentityKey) -> Bool { a.text.hasSameBytes(as: b.text) }

    public func hash(into hasher: inout Hasher) {
        let done: Void? = text.utf8.withContiguousStorageIfAvailable { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
        if done == nil { for byte in text.utf8 { hasher.combine(byte) } }
    }

    public var description: String { text }
}

extension String {
    /// Identity comparison: the same UTF-8 bytes (never `==`, which equates canonically
    /// equivalent text; see `IdentityKey`).
    public func hasSameBytes(as other: String) -> Bool {
        // memcmp of the contiguous UTF-8: the generic `utf8.elementsEqual` walked the views byte
        // by byte, several hundred instructions for a job id, on every dictionary hit.
        var a = self, b = other
        return a.withUTF8 { x in
            b.withUTF8 { y in
                guard x.count == y.count else { return false }
                guard let xb = x.baseAddress, let yb = y.baseAddress else { return true }  // both empty
                return memcmp(xb, yb, x.count) == 0
            }
        }
    }

    /// `hasSameBytes(as:)` for an optional: nil equals only nil.
    public func hasSameBytes(as other: String?) -> Bool {
        guard let other else { return false }
        return hasSameBytes(as: other)
    }
}
