import LedgerModel
import JobWire
import XCTest

/// The shapes of `hold`, `capture`, `release`, `holds`, `monitor`, `unmonitor` and the expiring
/// `credit`/`purchase`: shape errors are dead letters (`invalid_job`), values out of range are
/// refusals the ledger stores (`invalid_expiry`, `invalid_threshold`, `invalid_amount`).
final class CreditJobDecodingTests: XCTestCase, DecodingCase {
    func refusalCode(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> String? {
        if case .refusal(let r)? = op(text, file: file, line: line) { return r.code.rawValue }
        return nil
    }

    func testHoldShapes() {
        XCTAssertEqual(op(#"{"type":"hold","id":"h","userId":"u","amount":5}"#),
                       .hold(userId: "u", amount: 5, operation: nil, expiresIn: nil, metadata: nil))
        XCTAssertEqual(op(#"{"type":"hold","id":"h","userId":"u","operation":"image_generation","expiresIn":60,"metadata":{"a":1}}"#),
                       .hold(userId: "u", amount: nil, operation: "image_generation", expiresIn: 60, metadata: #"{"a":1}"#))
        XCTAssertTrue(invalid(#"{"type":"hold","id":"h","userId":"u"}"#).contains("exactly one"))
        XCTAssertTrue(invalid(#"{"type":"hold","id":"h","userId":"u","amount":5,"operation":"x"}"#).contains("exactly one"))
        XCTAssertTrue(invalid(#"{"type":"hold","userId":"u","amount":5}"#).contains("'id'"))
        XCTAssertTrue(invalid(#"{"type":"hold","id":"h","userId":"u","amount":5,"expiresIn":"60"}"#).contains("expiresIn"))
        XCTAssertTrue(invalid(#"{"type":"hold","id":"h","userId":"u","amount":5.5}"#).contains("amount"))
        XCTAssertEqual(refusalCode(#"{"type":"hold","id":"h","userId":"u","amount":5,"expiresIn":99999999999999999999}"#), "invalid_expiry")
        XCTAssertEqual(refusalCode(#"{"type":"hold","id":"h","userId":"u","amount":99999999999999999999}"#), "invalid_amount")
    }

    func testCaptureReleaseHoldsShapes() {
        XCTAssertEqual(op(#"{"type":"capture","id":"c","userId":"u","holdId":"h"}"#),
                       .capture(userId: "u", holdId: "h", amount: nil, operationType: nil, metadata: nil))
        XCTAssertEqual(op(#"{"type":"capture","id":"c","userId":"u","holdId":"h","amount":3,"operationType":"llm"}"#),
                       .capture(userId: "u", holdId: "h", amount: 3, operationType: "llm", metadata: nil))
        XCTAssertTrue(invalid(#"{"type":"capture","id":"c","userId":"u"}"#).contains("holdId"))
        XCTAssertTrue(invalid(#"{"type":"capture","id":"c","userId":"u","holdId":"a b"}"#).contains("holdId"))
        XCTAssertTrue(invalid(#"{"type":"release","id":"r","userId":"u","holdId":7}"#).contains("holdId"))
        XCTAssertEqual(op(#"{"type":"release","id":"r","userId":"u","holdId":"h"}"#), .release(userId: "u", holdId: "h"))
        let holds = try? decode(#"{"type":"holds","userId":"u"}"#).get()
        XCTAssertEqual(holds?.command.operation, .holds(userId: "u"))
        XCTAssertNil(holds?.command.jobId, "a query stores nothing")
    }

    func testMonitorShapes() {
        XCTAssertEqual(op(#"{"type":"monitor","id":"m","userId":"u","threshold":10}"#),
                       .monitor(userId: "u", monitorId: nil, threshold: 10))
        XCTAssertEqual(op(#"{"type":"monitor","id":"m","userId":"u","threshold":0,"monitorId":"low"}"#),
                       .monitor(userId: "u", monitorId: "low", threshold: 0))
        XCTAssertEqual(op(#"{"type":"monitor","id":"m","userId":"u","threshold":-1}"#),
                       .monitor(userId: "u", monitorId: nil, threshold: -1), "a negative threshold is the ledger's refusal")
        XCTAssertEqual(refusalCode(#"{"type":"monitor","id":"m","userId":"u","threshold":99999999999999999999}"#), "invalid_threshold")
        XCTAssertTrue(invalid(#"{"type":"monitor","id":"m","userId":"u"}"#).contains("threshold"))
        XCTAssertTrue(invalid(#"{"type":"monitor","id":"m","userId":"u","threshold":"5"}"#).contains("threshold"))
        XCTAssertTrue(invalid(#"{"type":"monitor","id":"m","userId":"u","threshold":5,"monitorId":"x y"}"#).contains("monitorId"))
        XCTAssertTrue(invalid(#"{"type":"unmonitor","id":"m","userId":"u"}"#).contains("monitorId"))
        XCTAssertEqual(op(#"{"type":"unmonitor","id":"m","userId":"u","monitorId":"low"}"#), .unmonitor(userId: "u", monitorId: "low"))
    }

    func testExpiringCreditAndPurchase() {
        XCTAssertEqual(op(#"{"type":"credit","id":"c","userId":"u","operationType":"promo","amount":5,"expiresIn":60}"#),
                       .credit(userId: "u", operationType: "promo", amount: 5, metadata: nil, expiry: .afterSeconds(60)))
        XCTAssertEqual(op(#"{"type":"credit","id":"c","userId":"u","operationType":"promo","amount":5,"expiresAt":"2027-01-01"}"#),
                       .credit(userId: "u", operationType: "promo", amount: 5, metadata: nil, expiry: .at(LedgerTime.parse("2027-01-01")!)))
        XCTAssertTrue(invalid(#"{"type":"credit","id":"c","userId":"u","operationType":"p","amount":5,"expiresAt":"soon"}"#).contains("expiresAt"))
        XCTAssertTrue(invalid(#"{"type":"credit","id":"c","userId":"u","operationType":"p","amount":5,"expiresAt":"2027-01-01","expiresIn":5}"#).contains("exclude"))
        XCTAssertEqual(refusalCode(#"{"type":"credit","id":"c","userId":"u","operationType":"p","amount":5,"expiresIn":99999999999999999999}"#), "invalid_expiry")
        XCTAssertEqual(op(#"{"type":"purchase","id":"p","userId":"u","tier":"Gift","paymentId":"x","allocationExpiresIn":3600}"#),
                       .purchase(userId: "u", tier: "Gift", paymentId: "x", months: 1, metadata: nil, allocationExpiresIn: 3600))
        XCTAssertTrue(invalid(#"{"type":"purchase","id":"p","userId":"u","tier":"Gift","paymentId":"x","allocationExpiresIn":1.5}"#).contains("allocationExpiresIn"))
        // `expiry` is checked by the ledger (a stored refusal), not here.
        XCTAssertEqual(op(#"{"type":"debit","id":"d","userId":"u","operationType":"expiry","amount":1}"#),
                       .debit(userId: "u", operationType: "expiry", amount: 1, metadata: nil))
    }
}
