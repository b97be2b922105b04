import JobWire
import XCTest

/// The contract's routing function and its test vectors, and the `TOKENLEDGER_PARTITIONS` lists.
final class PartitioningTests: XCTestCase {
    func testTheContractsVectors() throws {
        XCTAssertEqual(Partitioning.crc32("alice".utf8), 663_665_735)
        XCTAssertEqual(Partitioning.crc32("bob".utf8), 4_123_767_104)
        XCTAssertEqual(Partitioning.crc32("123456789".utf8), 0xCBF4_3926, "the CRC-32/IEEE check value")
        let four = try Partitioning(count: 4)
        XCTAssertEqual(four.partition(of: "alice"), 3)
        XCTAssertEqual(four.partition(of: "bob"), 0)
        XCTAssertEqual(try Partitioning(count: 1).partition(of: "alice"), 0)
    }

    func testServedLists() throws {
        let four = try Partitioning(count: 4)
        XCTAssertEqual(try four.served("all"), [0, 1, 2, 3])
        XCTAssertEqual(try four.served("0-1,3"), [0, 1, 3])
        XCTAssertEqual(try four.served(" 2 , 0-1 ,1"), [0, 1, 2])
        for bad in ["4", "0-4", "2-1", "-1", "a", "0,,1", "1-2-3", ""] where bad != "" {
            XCTAssertThrowsError(try four.served(bad), bad)
        }
        XCTAssertThrowsError(try Partitioning(count: 0))
        XCTAssertThrowsError(try Partitioning(count: Partitioning.maxCount + 1))
    }

    func testAJobOfAnotherPartitionsUserIsAWrongPartitionDeadLetter() throws {
        let four = try Partitioning(count: 4)
        let alice = Array(#"{"type":"charge","id":"c1","userId":"alice","operation":"chatgpt_message","replyTo":"r"}"#.utf8)
        let renewAll = Array(#"{"type":"renewAll","id":"r1"}"#.utf8)
        XCTAssertNoThrow(try four.admit(Job.decode(alice), raw: alice, on: 3).get())
        XCTAssertNoThrow(try four.admit(Job.decode(renewAll), raw: renewAll, on: 1).get(), "renewAll covers the partition it is pushed on")
        switch four.admit(Job.decode(alice), raw: alice, on: 0) {
        case .success: XCTFail("alice belongs to partition 3")
        case .failure(let invalid):
            XCTAssertEqual(invalid.error.code, "wrong_partition")
            XCTAssertEqual(invalid.raw, alice)
            XCTAssertEqual(invalid.replyTo, "r")
        }
        XCTAssertNoThrow(try Partitioning.single.admit(Job.decode(alice), raw: alice, on: 0).get())
    }
}
