import Foundation
import LedgerModel
import JobWire
import TestSupport
import XCTest

/// `Job.decode` alone: the strict JSON reading and the field rules, without Redis or SQLite.
final class JobDecodingTests: XCTestCase {
    func decode(_ text: String) -> Result<Job, InvalidJob> { Job.decode(Array(text.utf8)) }

    func invalidMessage(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> String {
        switch decode(text) {
        case .success(let job): XCTFail("decoded \(text) as \(job.command)", file: file, line: line); return ""
        case .failure(let invalid):
            XCTAssertEqual(invalid.error.code, "invalid_job", file: file, line: line)
            return invalid.error.message
        }
    }

    func testStrictJSON() {
        let bad = [
            #"{"type":"open","id":"a","userId":"u",}"#, #"{"type":"open" "id":"a"}"#, #"{'type':'open'}"#,
            #"{"type":"open","id":"a","userId":"u"} x"#, #"{"type":"open","id":"a","userId":"u"}{}"#,
            #"{"type":"debit","id":"a","userId":"u","operationType":"x","amount":012}"#,
            #"{"type":"open","id":"a","userId":"u\u12"}"#, #"{"type":"open","id":"a","userId":"\ud800"}"#,
            "{\"type\":\"open\",\"id\":\"a\",\"userId\":\"tab\there\"}", #"{"type":"open",/*c*/"id":"a"}"#,
            #"{"type":"open","id":"a","userId":"u","x":[1,2,]}"#, #"{"type":"open","id":"a","userId":"u","x":tru}"#,
            #"{"type":"open","id":"a","userId":"u","x":-}"#, #"{"type":"open","id":"a","userId":"u","x":1.}"#, "", "   ", "null",
        ]
        for text in bad { XCTAssertFalse(invalidMessage(text).isEmpty, text) }
        let deep = #"{"type":"open","id":"a","userId":"u","x":"# + String(repeating: "[", count: 100) + String(repeating: "]", count: 100) + "}"
        XCTAssertTrue(invalidMessage(deep).contains("deeper"))
    }

    /// The dead letter's message names its fault once.
    func testUnreadableJobMessagesSayItOnce() {
        XCTAssertEqual(invalidMessage("[1]"), "The job cannot be read: it is not a JSON object.")
        XCTAssertEqual(invalidMessage("null"), "The job cannot be read: it is not a JSON object.")
        XCTAssertTrue(invalidMessage(#"{"type" "open"}"#).hasPrefix("The job cannot be read: it is not valid JSON: expected ':'"))
    }

    func testEscapesAndUnicode() throws {
        let job = try decode(#"{"type":"open","id":"a","userId":"caf\u00e9 \ud83d\ude00 \"q\" \\ \/"}"#).get()
        XCTAssertEqual(job.command.operation, .open(userId: "café 😀 \"q\" \\ /"))
        XCTAssertTrue(invalidMessage(#"{"type":"open","id":"a","userId":"line\nbreak"}"#).contains("userId"), "an escaped control character is still one")
        let direct = try decode(#" { "type" : "open" , "id" : "a" , "userId" : "日本" } "#).get()
        XCTAssertEqual(direct.command.operation, .open(userId: "日本"))
    }

    func testIntegersNullsAndUnknownFields() throws {
        let debit = try decode(#"{"type":"debit","id":"d","userId":"u","operationType":"x","amount":9223372036854775807,"extra":{"a":[1,{"b":null}]},"replyTo":null}"#).get()
        XCTAssertEqual(debit.command.operation, .debit(userId: "u", operationType: "x", amount: .max, metadata: nil))
        XCTAssertNil(debit.replyTo, "null reads as absent")
        let negative = try decode(#"{"type":"debit","id":"d","userId":"u","operationType":"x","amount":-9223372036854775808}"#).get()
        XCTAssertEqual(negative.command.operation, .debit(userId: "u", operationType: "x", amount: .min, metadata: nil))
        guard case .refusal(let error) = try decode(#"{"type":"credit","id":"c","userId":"u","operationType":"x","amount":18446744073709551616}"#).get().command.operation else {
            return XCTFail("an integer beyond 64 bits is a refusal")
        }
        XCTAssertEqual(error.code.rawValue, "invalid_amount")
        XCTAssertTrue(invalidMessage(#"{"type":"credit","id":"c","userId":"u","operationType":"x","amount":1e3}"#).contains("amount"))
        XCTAssertTrue(invalidMessage(#"{"type":"credit","id":"c","userId":"u","operationType":"x","amount":true}"#).contains("amount"))
    }

    func testMetadataIsKeptAsSentAndChecked() throws {
        let job = try decode(#"{"type":"charge","id":"c","userId":"u","operation":"chatgpt_message","metadata":{"b":[1,2],"a":{"x":"y"}}}"#).get()
        XCTAssertEqual(job.command.operation, .charge(userId: "u", operation: "chatgpt_message", metadata: #"{"b":[1,2],"a":{"x":"y"}}"#))
        XCTAssertTrue(invalidMessage(#"{"type":"charge","id":"c","userId":"u","operation":"m","metadata":"text"}"#).contains("metadata"))
        let big = String(repeating: "z", count: 16 * 1024)
        XCTAssertTrue(invalidMessage(#"{"type":"charge","id":"c","userId":"u","operation":"m","metadata":{"z":"\#(big)"}}"#).contains("metadata"))
    }

    func testIdsAndTypes() {
        XCTAssertTrue(invalidMessage(#"{"type":"charge","id":"a b","userId":"u","operation":"m"}"#).contains("'id'"))
        XCTAssertTrue(invalidMessage(#"{"type":"charge","id":"a/b","userId":"u","operation":"m"}"#).contains("'id'"))
        XCTAssertTrue(invalidMessage(#"{"type":"charge","id":"","userId":"u","operation":"m"}"#).contains("'id'"))
        XCTAssertTrue(invalidMessage(#"{"type":"charge","id":"\#(String(repeating: "a", count: 129))","userId":"u","operation":"m"}"#).contains("'id'"))
        XCTAssertTrue(invalidMessage(#"{"type":"charge","id":"é","userId":"u","operation":"m"}"#).contains("'id'"), "letters are ASCII letters")
        XCTAssertTrue(invalidMessage(#"{"type":"charge","userId":"u","operation":"m"}"#).contains("'id'"))
        XCTAssertTrue(invalidMessage(#"{"type":"Charge","id":"a","userId":"u"}"#).contains("Unknown job type"))
        XCTAssertTrue(invalidMessage(#"{"type":"open","id":"a","userId":"u\u0085"}"#).contains("userId"), "C1 controls too")
        XCTAssertNoThrow(try decode(#"{"type":"balance","userId":"u"}"#).get(), "queries need no id")
        XCTAssertNoThrow(try decode(#"{"type":"renewAll","dryRun":true}"#).get(), "a dry run needs no id")
    }

    /// The contract's id alphabet includes `_`: a payment provider's id serves as the job id and as
    /// the paymentId as it is.
    func testIdsWithUnderscoresAreRead() throws {
        let job = try decode(#"{"type":"purchase","id":"pay_pi_3Nf","userId":"u","tier":"Professional","paymentId":"pay_pi_3Nf"}"#).get()
        XCTAssertEqual(job.id, "pay_pi_3Nf")
        XCTAssertEqual(job.command.jobId, "pay_pi_3Nf")
        XCTAssertEqual(job.command.operation, .purchase(userId: "u", tier: "Professional", paymentId: "pay_pi_3Nf", months: 1, metadata: nil))
        let all = "aZ09._:-" + String(repeating: "_", count: 120)
        XCTAssertEqual(try decode(#"{"type":"open","id":"\#(all)","userId":"u"}"#).get().id, all, "every allowed character, 128 of them")
        let refund = try decode(#"{"type":"refund","id":"re_1","userId":"u","refundOf":"ch_3Nf"}"#).get()
        XCTAssertEqual(refund.command.operation, .refund(userId: "u", refundOf: "ch_3Nf", amount: nil, metadata: nil))
    }

    func refusal(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> (jobId: String?, code: String)? {
        switch decode(text) {
        case .failure(let invalid):
            XCTFail("dead-lettered \(text.prefix(200)): \(invalid.error.message)", file: file, line: line)
        case .success(let job):
            if case .refusal(let refusal) = job.command.operation { return (job.command.jobId, refusal.code.rawValue) }
            XCTFail("not a refusal: \(job.command.operation)", file: file, line: line)
        }
        return nil
    }

    /// An `operation` or `tier` that cannot be a configured name is an unknown one: a refusal stored
    /// under the job's id, not a dead letter. Only a wrong JSON type or a missing field is a shape error.
    func testUnreadableNamesAreUnknownNotMalformed() {
        let long = String(repeating: "x", count: 65)
        for operation in [long, #"a\u0001b"#, #"tab\there"#, #"c1\u0085"#, ""] {
            let charge = refusal(#"{"type":"charge","id":"c","userId":"u","operation":"\#(operation)"}"#)
            XCTAssertEqual(charge?.jobId, "c", "stored under the job's id")
            XCTAssertEqual(charge?.code, "unknown_operation", operation)
            XCTAssertEqual(refusal(#"{"type":"canAfford","userId":"u","operation":"\#(operation)"}"#)?.code, "unknown_operation", operation)
        }
        for tier in [long, #"Pro\u001f"#, ""] {
            let purchase = refusal(#"{"type":"purchase","id":"p","userId":"u","tier":"\#(tier)","paymentId":"pi_1"}"#)
            XCTAssertEqual(purchase?.jobId, "p")
            XCTAssertEqual(purchase?.code, "unknown_tier", tier)
            XCTAssertEqual(refusal(#"{"type":"renewAll","id":"r","tier":"\#(tier)"}"#)?.code, "unknown_tier", tier)
        }
        let big = String(repeating: "y", count: 60_000)
        XCTAssertEqual(refusal(#"{"type":"charge","id":"c","userId":"u","operation":"\#(big)"}"#)?.code, "unknown_operation")
        // Shape errors stay shape errors.
        XCTAssertTrue(invalidMessage(#"{"type":"charge","id":"c","userId":"u","operation":5}"#).contains("operation"))
        XCTAssertTrue(invalidMessage(#"{"type":"charge","id":"c","userId":"u"}"#).contains("operation"))
        XCTAssertTrue(invalidMessage(#"{"type":"purchase","id":"p","userId":"u","tier":["Pro"],"paymentId":"pi_1"}"#).contains("tier"))
        XCTAssertTrue(invalidMessage(#"{"type":"purchase","id":"p","userId":"","tier":"\#(long)","paymentId":"pi_1"}"#).contains("userId"),
                      "the other fields are still checked first")
        XCTAssertTrue(invalidMessage(#"{"type":"debit","id":"d","userId":"u","operationType":"\#(long)","amount":1}"#).contains("operationType"),
                      "operationType is free-form and keeps its shape rule")
    }

    /// Random damage to valid jobs (byte flips, truncation, insertion and removal of JSON's special
    /// characters) and random strings never crash the reader: each input is a job or an `invalid_job`
    /// with a message. Seeded: replay a failure with FUZZ_SEED=<the printed seed>.
    func testMutatedJobsNeverCrash() {
        var rng = SeededGenerator.fromEnvironment(test: "testMutatedJobsNeverCrash")
        let seed = rng.seed
        let valid = [
            #"{"type":"charge","id":"c-1","userId":"u","operation":"chatgpt_message","metadata":{"a":[1,2.5e3,{"b":null}],"s":"\u00e9\ud83d\ude00"},"replyTo":"r"}"#,
            #"{"type":"debit","id":"d","userId":"u","operationType":"x","amount":-9223372036854775808}"#,
            #"{"type":"history","userId":"u","limit":20,"offset":0,"startDate":"2026-01-01T00:00:00.000Z"}"#,
            #"{"type":"purchase","id":"pay_pi_3Nf","userId":"u","tier":"Professional","paymentId":"pi_3Nf","months":2}"#,
            #"{"type":"refund","id":"r:1","userId":"u","refundOf":"c-1","amount":18446744073709551616}"#,
            #"{"type":"renewAll","dryRun":true,"tier":"Gift","limit":5,"continueOnError":false}"#,
        ].map { Array($0.utf8) }
        let alphabet = Array(#"{}[]",:\-0123456789.eEtrufalsn u_"#.utf8) + [0x00, 0x1F, 0x7F, 0xC3, 0xA9, 0xFF, 0xED, 0xA0, 0x80]
        let deadline = Date().addingTimeInterval(4)
        var decoded = 0, refused = 0, runs = 0
        for i in 0..<40_000 where Date() < deadline {
            runs += 1
            var bytes: [UInt8]
            if i % 5 == 0 {
                bytes = (0..<Int.random(in: 0...64, using: &rng)).map { _ in
                    Bool.random(using: &rng) ? alphabet.randomElement(using: &rng)! : UInt8.random(in: 0...255, using: &rng)
                }
            } else {
                bytes = valid.randomElement(using: &rng)!
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    let position = bytes.isEmpty ? 0 : Int.random(in: 0..<bytes.count, using: &rng)
                    switch Int.random(in: 0..<5, using: &rng) {
                    case 0 where !bytes.isEmpty: bytes[position] ^= UInt8(1) << UInt8.random(in: 0...7, using: &rng)
                    case 1 where !bytes.isEmpty: bytes[position] = alphabet.randomElement(using: &rng)!
                    case 2: bytes = Array(bytes.prefix(position))
                    case 3: bytes.insert(alphabet.randomElement(using: &rng)!, at: position)
                    default: if !bytes.isEmpty { bytes.remove(at: position) }
                    }
                }
            }
            switch Job.decode(bytes) {
            case .success: decoded += 1
            case .failure(let invalid):
                refused += 1
                XCTAssertEqual(invalid.error.code, "invalid_job", "seed \(seed): \(String(decoding: bytes, as: UTF8.self).debugDescription)")
                XCTAssertFalse(invalid.error.message.isEmpty, "seed \(seed)")
                XCTAssertEqual(invalid.raw, bytes, "the dead letter keeps the job unchanged; seed \(seed)")
            }
        }
        print("testMutatedJobsNeverCrash: seed \(seed): \(runs) inputs, \(decoded) decoded, \(refused) refused")
        XCTAssertGreaterThan(decoded, 0, "some mutations stay valid jobs; seed \(seed)")
        XCTAssertGreaterThan(refused, 0, "seed \(seed)")
    }
}
