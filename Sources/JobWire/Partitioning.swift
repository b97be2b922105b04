import Foundation

/// How a ledger's users are spread over its partitions (the contract's "Partitions"): a user
/// belongs to partition `crc32(UTF-8 userId) mod count`, CRC-32/IEEE as zlib computes it, so that
/// producers in any language route a job with a function their standard library already has.
///
/// The count is fixed when a ledger is created: changing it would move users between ledgers.
public struct Partitioning: Sendable, Equatable {
    public let count: Int

    /// The most partitions one ledger may be split into.
    public static let maxCount = 1024

    public init(count: Int) throws(PartitionError) {
        guard (1...Self.maxCount).contains(count) else {
            throw PartitionError("the partition count must be from 1 to \(Self.maxCount); it is \(count)")
        }
        self.count = count
    }

    private init(uncheckedCount: Int) { count = uncheckedCount }

    /// One partition: the ledger is not split, and its keys carry no tag.
    public static let single = Partitioning(uncheckedCount: 1)

    /// The job's own partition, or a dead letter `wrong_partition` when it was pushed on another
    /// partition's queue: applying it here would put the user's entries in the wrong ledger.
    public func admit(_ decoded: Result<Job, InvalidJob>, raw: [UInt8], on partition: Int) -> Result<Job, InvalidJob> {
        guard count > 1, case .success(let job) = decoded, let userId = job.userId else { return decoded }
        let owner = self.partition(of: userId)
        guard owner != partition else { return decoded }
        return .failure(InvalidJob(raw: raw, error: JobError(code: "wrong_partition",
            "The job's user belongs to partition \(owner) of \(count), not \(partition): push it on that partition's queue."),
                                   id: job.id, type: job.type.rawValue, replyTo: job.replyTo))
    }

    /// Partition of `userId`.
    public func partition(of userId: String) -> Int {
        Int(Self.crc32(userId.utf8) % UInt32(count))
    }

    /// Parses which partitions a process serves: `all`, or a list of numbers and ranges such as
    /// `0-1,3`. Returns them sorted, without repeats; every number must be below `count`.
    public func served(_ text: String) throws(PartitionError) -> [Int] {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.isEmpty || trimmed == "all" { return Array(0..<count) }
        var chosen = Set<Int>()
        for part in trimmed.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard (1...2).contains(bounds.count), let low = Int(bounds[0]), let high = Int(bounds[bounds.count - 1]),
                  low >= 0, low <= high, high < count
            else {
                throw PartitionError("'\(part)' in '\(text)' is not a partition or range of partitions 0-\(count - 1)")
            }
            chosen.formUnion(low...high)
        }
        return chosen.sorted()
    }

    /// CRC-32/IEEE (reflected, polynomial 0xEDB88320, initial and final XOR 0xFFFFFFFF).
    public static func crc32(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8)
        }
        return crc ^ 0xFFFF_FFFF
    }

    private static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }
}

/// A partition count or list that cannot be used; `code` is stable.
public struct PartitionError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public var code: String { "invalid_partitions" }
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
