import Foundation
import Ledger
import Redis
import TestSupport
import Worker
import XCTest

/// Identity is bytes, through a real worker: `"\u00e9"` and `"e\u0301"` (one string to Swift's
/// `==`) are two users, two jobs, two holds, while their rows lag in the tail and after the merge.
final class IdentityEndToEndTests: XCTestCase {
    /// Pushes a job written as raw JSON (the escapes keep the exact bytes) and waits for its reply.
    func call(_ h: WorkerHarness, _ fields: String) throws -> [String: Any] {
        let reply = h.replyKey()
        try h.pushRaw(Array(#"{\#(fields),"replyTo":"\#(reply)"}"#.utf8))
        return try h.reply(reply)
    }

    func testCanonicallyEqualIdsAreTwoUsersTwoJobsAndTwoHolds() async throws {
        let h = try WorkerHarness()
        let (nfc, nfd) = (#"caf\u00e9"#, #"cafe\u0301"#)  // JSON escapes
        func balance(_ user: String) throws -> Int64? {
            try call(h, #""type":"balance","userId":"\#(user)""#).int("tokensBalance")
        }
        func check(_ when: String) throws {
            XCTAssertEqual(try balance(nfc), 100 - 10 - 20, when)
            XCTAssertEqual(try balance(nfd), 100 - 5 - 1, when)
            let holds = try call(h, #""type":"holds","userId":"\#(nfd)""#)["holds"] as? [[String: Any]]
            XCTAssertEqual(holds?.count, 1, when)
            XCTAssertEqual(holds?.first?.int("amount"), 7, when)
        }

        var worker = try h.startWorker()  // the default merge threshold: rows lag in the tail
        XCTAssertEqual(try call(h, #""type":"open","id":"o1","userId":"\#(nfc)""#).bool("success"), true)
        XCTAssertEqual(try call(h, #""type":"charge","id":"c1","userId":"\#(nfc)","operation":"image_generation""#).int("newBalance"), 90)
        // The NFC row lags; the NFD user is another user, with no account yet.
        XCTAssertEqual(try call(h, #""type":"charge","id":"c2","userId":"\#(nfd)","operation":"chatgpt_message""#).errorCode, "user_not_found")
        let open = try call(h, #""type":"open","id":"o2","userId":"\#(nfd)""#)
        XCTAssertEqual(open.bool("success"), true, "a second user, not account_exists: \(open)")
        XCTAssertEqual(try call(h, #""type":"charge","id":"c3","userId":"\#(nfd)","operation":"chatgpt_message""#).int("newBalance"), 95)
        // An operation type in NFC on the NFD user (job ids are ASCII on the wire; the ledger's
        // own tests cover canonically equal job, hold and grant ids).
        let d1 = try call(h, #""type":"debit","id":"d1","userId":"\#(nfd)","operationType":"\#(nfc)","amount":1"#)
        XCTAssertEqual(d1.int("newBalance"), 94)
        // Each user's holds are its own.
        XCTAssertEqual(try call(h, #""type":"hold","id":"h1","userId":"\#(nfc)","amount":20"#).bool("success"), true)
        XCTAssertEqual(try call(h, #""type":"hold","id":"h2","userId":"\#(nfd)","amount":7"#).bool("success"), true)
        XCTAssertEqual(try call(h, #""type":"capture","id":"k1","userId":"\#(nfd)","holdId":"h1""#).errorCode, "hold_not_found",
                       "the NFC user's hold is not the NFD user's")
        XCTAssertEqual(try call(h, #""type":"capture","id":"k2","userId":"\#(nfc)","holdId":"h1""#).int("newBalance"), 70)
        try check("while the rows lag")
        try await worker.stop()

        // Merged, and read again from the file.
        do {
            let ledger = try Ledger(path: h.databasePath)
            XCTAssertGreaterThan(try ledger.unmergedRows(), 0)
            try ledger.mergeAll()
            XCTAssertEqual(try ledger.unmergedRows(), 0)
        }
        worker = try h.startWorker()
        try check("after the merge")
        let history = try call(h, #""type":"history","userId":"\#(nfd)","operationType":"\#(nfc)""#)
        XCTAssertEqual(history.int("total"), 1, "\(history)")
        XCTAssertEqual(try call(h, #""type":"history","userId":"\#(nfd)","operationType":"\#(nfd)""#).int("total"), 0)
        XCTAssertEqual(try call(h, #""type":"open","id":"o3","userId":"\#(nfd)""#).errorCode, "account_exists")
        try await worker.stop()
        XCTAssertEqual(try Ledger.verify(path: h.databasePath), [])
    }
}
