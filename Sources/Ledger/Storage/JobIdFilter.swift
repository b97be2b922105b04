/// Which job ids the ledger may have stored: an in-memory filter that lets a job id never seen
/// skip the B-tree probe of `jobs`.
///
/// Why: with random UUID job ids, the probe of `jobs` for every new job reads a random leaf (a
/// page the OS usually holds, but a read system call and a B-tree descent each time), and the
/// tail's dictionary hashes the id's bytes once more. Nearly every job id is new, so nearly every
/// probe finds nothing. The filter answers "never stored" for most of them from one cache line.
///
/// A split-block Bloom filter: each id sets one bit in each of the 8 words of one 64-byte block,
/// chosen by a hash of its UTF-8 bytes (identity is bytes, as in `jobs`). `mayContain` false is
/// certain; true only means "probe" (a false positive costs the probe the ledger made before).
/// So correctness never depends on it: an id missing from the filter would be the one bug, and
/// the ledger keeps every stored id in it (see `LedgerTail.reload`).
///
/// Sized at `bitsPerId` (10: 1.25 bytes) per id of capacity; when the ids reach the capacity a
/// segment of twice the capacity is added (a Bloom filter cannot grow in place), so memory stays
/// within 2.5 bytes per stored id and a probe reads one block per segment (one, unless the
/// ledger doubled since it was opened). Measured false-positive rate at capacity: see
/// `JobIdFilterTests` and BENCHMARKS.md.
struct JobIdFilter: Sendable {
    static let bitsPerId = 10
    /// The smallest segment: 64 Ki ids, 80 KiB.
    static let minimumCapacity = 1 << 16

    private struct Segment: Sendable {
        var words: [UInt64]
        let blocks: UInt64
        let capacity: Int
        var count = 0

        init(capacity: Int) {
            self.capacity = capacity
            let bits = capacity * JobIdFilter.bitsPerId
            let blocks = max(1, (bits + 511) / 512)
            self.blocks = UInt64(blocks)
            words = [UInt64](repeating: 0, count: blocks * 8)
        }

        @inline(__always) func block(_ h: UInt64) -> Int {
            // Lemire's multiply-shift range reduction of the high half: no division.
            Int(truncatingIfNeeded: ((h >> 32) &* blocks) >> 32) &* 8
        }

        mutating func insert(_ h: UInt64, _ masks: SIMD8<UInt64>) {
            let b = block(h)
            words.withUnsafeMutableBufferPointer { w in
                for i in 0..<8 { w[b &+ i] |= masks[i] }
            }
            count += 1
        }

        func mayContain(_ h: UInt64, _ masks: SIMD8<UInt64>) -> Bool {
            let b = block(h)
            return words.withUnsafeBufferPointer { w in
                var missing: UInt64 = 0
                for i in 0..<8 { missing |= masks[i] & ~w[b &+ i] }
                return missing == 0
            }
        }
    }

    /// One bit per word, from the low half of the hash times an odd constant per word (the
    /// salts of Parquet's split-block Bloom filter): 6 bits each, independent of the block.
    @inline(__always) private static func masks(_ h: UInt64) -> SIMD8<UInt64> {
        let salts = SIMD8<UInt32>(0x47b6_137b, 0x4497_4d91, 0x8824_ad5b, 0xa2b7_289d,
                                  0x7054_95c7, 0x2df1_424b, 0x9efc_4947, 0x5c6b_fb31)
        let x = SIMD8<UInt32>(repeating: UInt32(truncatingIfNeeded: h)) &* salts
        let shifts = SIMD8<UInt64>(truncatingIfNeeded: x &>> 26)
        return SIMD8<UInt64>(repeating: 1) &<< shifts
    }

    private var segments: [Segment]
    /// A random seed per filter: ids crafted to collide in one process do not collide in the next.
    private let seed: UInt64

    /// A filter for about `expectedIds` ids (it grows past them).
    init(expectedIds: Int, seed: UInt64 = UInt64.random(in: 0...UInt64.max)) {
        self.seed = seed
        segments = [Segment(capacity: max(Self.minimumCapacity, expectedIds))]
    }

    /// Ids inserted (duplicates count).
    var count: Int { segments.reduce(0) { $0 + $1.count } }
    /// Memory of the bit arrays.
    var bytes: Int { segments.reduce(0) { $0 + $1.words.count * 8 } }
    var segmentCount: Int { segments.count }

    mutating func insert(_ id: String) {
        var id = id
        insert(hash: id.withUTF8 { Self.hash(UnsafeRawBufferPointer($0), seed: seed) })
    }

    mutating func insert(bytes: UnsafeRawBufferPointer) {
        insert(hash: Self.hash(bytes, seed: seed))
    }

    private mutating func insert(hash h: UInt64) {
        let last = segments.count - 1
        if segments[last].count >= segments[last].capacity {
            segments.append(Segment(capacity: segments[last].capacity * 2))
            segments[last + 1].insert(h, Self.masks(h))
        } else {
            segments[last].insert(h, Self.masks(h))
        }
    }

    /// False: `id` was never inserted. True: it may have been.
    func mayContain(_ id: String) -> Bool {
        var id = id
        let h = id.withUTF8 { Self.hash(UnsafeRawBufferPointer($0), seed: seed) }
        let masks = Self.masks(h)
        for s in segments where s.mayContain(h, masks) { return true }
        return false
    }

    /// Adds every id of `other`, a filter of the same seed and sizes (built apart, by a scan);
    /// false, changing nothing, when they do not match.
    mutating func formUnion(_ other: JobIdFilter) -> Bool {
        guard seed == other.seed, other.segments.count <= segments.count + 1 else { return false }
        for (i, theirs) in other.segments.enumerated() {
            if i < segments.count {
                guard segments[i].capacity == theirs.capacity else { return false }
            } else if segments[i - 1].capacity * 2 != theirs.capacity {
                return false
            }
        }
        for (i, theirs) in other.segments.enumerated() {
            if i == segments.count {
                segments.append(theirs)
                continue
            }
            segments[i].words.withUnsafeMutableBufferPointer { mine in
                theirs.words.withUnsafeBufferPointer { t in
                    for w in 0..<mine.count { mine[w] |= t[w] }
                }
            }
            segments[i].count += theirs.count
        }
        return true
    }

    /// Sets every bit, so that every id is "maybe stored": what a filter full of false positives
    /// does, for the tests that force the probe path.
    mutating func saturate() {
        for s in segments.indices {
            for w in segments[s].words.indices { segments[s].words[w] = ~0 }
        }
    }

    /// A 64-bit hash of bytes: 8 bytes at a time, each folded by a 128-bit multiply (as in
    /// wyhash), then a final avalanche. Not cryptographic; the seed varies per process.
    static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64) -> UInt64 {
        var h = seed ^ (UInt64(bytes.count) &* 0x9e37_79b9_7f4a_7c15)
        var i = 0
        let n = bytes.count
        while i + 8 <= n {
            let w = bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            h = fold(h ^ w, 0xa076_1d64_78bd_642f)
            i += 8
        }
        if i < n {
            var w: UInt64 = 0
            var shift: UInt64 = 0
            while i < n {
                w |= UInt64(bytes[i]) &<< shift
                shift += 8
                i += 1
            }
            h = fold(h ^ w, 0xe703_7ed1_a0b4_28db)
        }
        h ^= h >> 33
        h = h &* 0xff51_afd7_ed55_8ccd
        h ^= h >> 33
        h = h &* 0xc4ce_b9fe_1a85_ec53
        return h ^ (h >> 33)
    }

    @inline(__always) private static func fold(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let (high, low) = a.multipliedFullWidth(by: b)
        return high ^ low
    }
}

/// The job-id filter's size and what it saved, for metrics and benchmarks.
public struct JobFilterStatus: Sendable, Equatable {
    /// Ids inserted since the filter was last built (at open, or after another writer's prune).
    public var ids: Int
    public var bytes: Int
    public var segments: Int
    /// Lookups answered "never stored" without touching the tail or `jobs`.
    public var skippedLookups: Int
    /// Lookups the filter let through that found nothing (false positives).
    public var falsePositives: Int
    /// Scans of `jobs` that built the filter.
    public var builds: Int
    /// False while a scan of `jobs` runs in the background (every id is looked up meanwhile).
    public var complete: Bool
}

extension Ledger {
    public var jobFilterStatus: JobFilterStatus {
        get throws {
            try writer.read { _ in
                JobFilterStatus(ids: tail.jobFilter.count, bytes: tail.jobFilter.bytes, segments: tail.jobFilter.segmentCount,
                                skippedLookups: tail.filterSkips, falsePositives: tail.filterFalsePositives, builds: tail.filterBuilds,
                                complete: { if case .through = tail.filterCoverage { true } else { false } }())
            }
        }
    }
}
