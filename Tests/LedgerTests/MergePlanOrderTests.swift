import Foundation
import XCTest
@testable import Ledger

/// The merge writes `jobs` in SQLite's BINARY order; the plan sorts by an 8-byte prefix first,
/// which must give exactly the order of the full byte comparison.
final class MergePlanOrderTests: XCTestCase {
    func testPrefixSortIsTheBytewiseOrder() {
        let seed = ProcessInfo.processInfo.environment["FUZZ_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: .min ... .max)
        print("testPrefixSortIsTheBytewiseOrder: FUZZ_SEED=\(seed)")
        var rng = SeededGenerator(seed: seed)
        // Short alphabets and lengths around 8 bytes make equal prefixes, prefixes of one another,
        // NULs and multi-byte characters common.
        let alphabet: [String] = ["a", "b", "\u{0}", "\u{1}", "é", "e\u{301}", "\u{7f}", "ÿ", "z", "0"]
        var ids: [String] = []
        for _ in 0..<5_000 {
            let length = Int(rng.next() % 14)
            ids.append((0..<length).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }.joined())
        }
        ids += (0..<2_000).map { _ in UUID().uuidString.lowercased() }
        ids += ["", "abcdefgh", "abcdefg", "abcdefgh\u{0}", "abcdefghi"]
        XCTAssertEqual(MergePlan.sortedJobIds(ids).map { Array($0.utf8) },
                       ids.sorted(by: MergePlan.bytewise).map { Array($0.utf8) })
        let bytes = MergePlan.sortedJobIds(ids).map { Array($0.utf8) }
        for (a, b) in zip(bytes, bytes.dropFirst()) {
            XCTAssertFalse(b.lexicographicallyPrecedes(a), "\(a) sorted before \(b)")
        }
    }
}
