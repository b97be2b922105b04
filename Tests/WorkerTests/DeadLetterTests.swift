import Foundation
import Redis
import TestSupport
import Worker
import XCTest

/// Bad input: every job that cannot be read lands on the dead-letter list whole, with a reason,
/// a failure reply where a replyTo can be read, and the worker keeps going.
final class DeadLetterTests: XCTestCase {
    func testCatalogueOfBadInputs() async throws {
        let h = try WorkerHarness()
        let reply = h.replyKey()
        let bigPadding = String(repeating: "x", count: 65 * 1024)
        let hugeMetadata = String(repeating: "y", count: 17 * 1024)
        let catalogue: [(String, [UInt8])] = [
            ("not JSON", Array("this is not json".utf8)),
            ("truncated JSON", Array(#"{"type":"charge","id":"#.utf8)),
            ("a JSON array", Array("[1,2,3]".utf8)),
            ("a JSON string", Array(#""charge""#.utf8)),
            ("empty", []),
            ("unknown type", Array(#"{"type":"teleport","id":"u1","userId":"a","replyTo":"\#(reply)"}"#.utf8)),
            ("missing type", Array(#"{"id":"u2","userId":"a"}"#.utf8)),
            ("type not a string", Array(#"{"type":7,"id":"u3","userId":"a"}"#.utf8)),
            ("missing id on a mutation", Array(#"{"type":"charge","userId":"a","operation":"chatgpt_message","replyTo":"\#(reply)"}"#.utf8)),
            ("invalid id", Array(#"{"type":"charge","id":"has space","userId":"a","operation":"chatgpt_message"}"#.utf8)),
            ("id too long", Array(#"{"type":"open","id":"\#(String(repeating: "i", count: 129))","userId":"a"}"#.utf8)),
            ("missing userId", Array(#"{"type":"open","id":"u4"}"#.utf8)),
            ("control character in userId", Array(#"{"type":"open","id":"u5","userId":"a\u0007b"}"#.utf8)),
            ("userId too long", Array(#"{"type":"open","id":"u6","userId":"\#(String(repeating: "u", count: 129))"}"#.utf8)),
            ("amount a string", Array(#"{"type":"debit","id":"u7","userId":"a","operationType":"x","amount":"5"}"#.utf8)),
            ("amount a fraction", Array(#"{"type":"debit","id":"u8","userId":"a","operationType":"x","amount":2.5}"#.utf8)),
            ("amount missing", Array(#"{"type":"credit","id":"u9","userId":"a","operationType":"x"}"#.utf8)),
            ("metadata not an object", Array(#"{"type":"charge","id":"u10","userId":"a","operation":"chatgpt_message","metadata":[1]}"#.utf8)),
            ("metadata too large", Array(#"{"type":"charge","id":"u11","userId":"a","operation":"chatgpt_message","metadata":{"y":"\#(hugeMetadata)"}}"#.utf8)),
            ("job over 64 KiB", Array(#"{"type":"open","id":"u12","userId":"a","pad":"\#(bigPadding)"}"#.utf8)),
            ("refund without refundOf or amount", Array(#"{"type":"refund","id":"u13","userId":"a"}"#.utf8)),
            ("statistics without dates", Array(#"{"type":"statistics","userId":"a"}"#.utf8)),
            ("bad date", Array(#"{"type":"history","userId":"a","startDate":"yesterday"}"#.utf8)),
            ("dryRun not a bool", Array(#"{"type":"renewAll","id":"u14","dryRun":"yes"}"#.utf8)),
        ]
        for (_, raw) in catalogue { try h.pushRaw(raw) }
        try h.pushRaw([0xFF, 0xFE, 0x00, 0x7B])  // not UTF-8
        // A good job after all of them: the queue does not stall.
        let good = try h.push(["type": "open", "id": "good", "userId": "dora"])
        let worker = try h.startWorker()
        XCTAssertEqual(try h.reply(good).bool("success"), true)

        let letters = try h.deadLetters()
        XCTAssertEqual(letters.count, catalogue.count + 1)
        for ((name, raw), letter) in zip(catalogue, letters) {
            XCTAssertEqual(letter.string("job"), String(decoding: raw, as: UTF8.self), "\(name): the raw job is kept unchanged")
            XCTAssertEqual(letter.errorCode, "invalid_job", name)
            XCTAssertFalse(((letter["error"] as? [String: Any])?["message"] as? String ?? "").isEmpty, name)
            XCTAssertNotNil(letter.string("failedAt"), name)
        }
        let binary = letters.last!
        XCTAssertNil(binary["job"])
        XCTAssertEqual(Data(base64Encoded: binary.string("jobBase64")!), Data([0xFF, 0xFE, 0x00, 0x7B]))

        // Where a replyTo could be read, the producer hears of the failure.
        let unknownType = try h.reply(reply)
        XCTAssertEqual(unknownType.bool("success"), false)
        XCTAssertEqual(unknownType.errorCode, "invalid_job")
        XCTAssertEqual(unknownType.string("id"), "u1")
        XCTAssertEqual(try h.reply(reply).errorCode, "invalid_job")
        try await worker.stop()
    }

    func testWellFormedButRefusedValuesAreStoredResultsNotDeadLetters() async throws {
        let h = try WorkerHarness()
        let worker = try h.startWorker()
        _ = try h.call(["type": "open", "id": "o", "userId": "eve"])
        let negative = try h.call(["type": "debit", "id": "neg", "userId": "eve", "operationType": "x", "amount": -5])
        XCTAssertEqual(negative.errorCode, "invalid_amount")
        let hugeRaw = #"{"type":"credit","id":"huge","userId":"eve","operationType":"x","amount":99999999999999999999999,"replyTo":"\#(h.keys.prefix):r1"}"#
        try h.pushRaw(Array(hugeRaw.utf8))
        XCTAssertEqual(try h.reply("\(h.keys.prefix):r1").errorCode, "invalid_amount")
        let overflow = try h.call(["type": "credit", "id": "ovf", "userId": "eve", "operationType": "x", "amount": Int64.max])
        XCTAssertEqual(overflow.errorCode, "invalid_amount", "a sum beyond 64 bits is refused")
        // The refusal is stored under its id: a replay answers it again, as a duplicate.
        let replay = try h.call(["type": "debit", "id": "neg", "userId": "eve", "operationType": "x", "amount": 5])
        XCTAssertEqual(replay.errorCode, "invalid_amount")
        XCTAssertEqual(replay.bool("duplicate"), true)
        XCTAssertEqual(try h.redis.llen(h.keys.dead), 0)
        try await worker.stop()
    }

    func testAReplyToOfTheWrongTypeDoesNotStallTheQueue() async throws {
        let h = try WorkerHarness()
        let wrong = "\(h.keys.prefix):string-key"
        try h.redis.set(wrong, "occupied")
        let worker = try h.startWorker()
        try h.push(["type": "open", "id": "w1", "userId": "fay"], replyTo: wrong)
        XCTAssertEqual(try h.call(["type": "balance", "userId": "fay"]).int("tokensBalance"), 100)
        try await worker.stop()
    }
}
