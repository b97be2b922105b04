import Foundation
import Ledger
import LedgerModel
import Redis
import TestSupport
import XCTest

/// kill -9 of the real executable at random moments of an expiry sweep: every lapse and every
/// hold expiry is written exactly once, balances come out right, and `tokenledger verify` passes.
final class ExpirySweepCrashTests: XCTestCase {
    func testKillDuringASweepChangesNothingTwice() throws {
        var random = SeededGenerator.fromEnvironment(test: "testKillDuringASweepChangesNothingTwice")
        let h = try WorkerHarness()
        let users = 4_000
        // Made an hour ago (a ledger's own clock), so that every grant and hold is due now.
        do {
            let clock = ManualClock(Date().addingTimeInterval(-3600))
            let ledger = try Ledger(path: h.databasePath, clock: clock)
            for chunk in stride(from: 0, to: users, by: 500) {
                var commands: [Command] = []
                for i in chunk..<min(chunk + 500, users) {
                    let u = "u\(i)"
                    commands.append(Command(jobId: "o\(i)", operation: .open(userId: u)))
                    commands.append(Command(jobId: "g\(i)", operation: .credit(userId: u, operationType: "promo", amount: 50,
                                                                                 metadata: nil, expiry: .afterSeconds(60))))
                    if i % 2 == 0 {
                        commands.append(Command(jobId: "h\(i)", operation: .hold(userId: u, amount: 30, operation: nil,
                                                                                   expiresIn: 120, metadata: nil)))
                    }
                }
                XCTAssertTrue(try ledger.apply(commands).allSatisfy(\.success))
            }
        }
        let config = h.directory.appendingPathComponent("config.json").path
        try Data(#"{"leaseSeconds": 1, "settleBatchSize": 5, "settleIntervalSeconds": 0.05}"#.utf8)
            .write(to: URL(fileURLWithPath: config))
        let reader = { try LedgerReader(path: h.databasePath) }
        var kills = 0
        while kills < 6, try reader().unsweptDueAccounts() > 0 {
            let id = "sweeper-\(kills)"
            let worker = try WorkerProcess(h, workerId: id, configFile: config)
            try h.eventually("\(id) holds the lease") { leaseWorkerId(try h.redis.get(h.keys.lease)) == id }
            usleep(UInt32.random(in: 5_000...150_000, using: &random))  // somewhere in the sweep
            worker.kill9()
            kills += 1
            print("kill \(kills): \(try reader().unsweptDueAccounts()) accounts left to settle")
        }
        let worker = try WorkerProcess(h, workerId: "finisher", configFile: config)
        try h.eventually(timeout: 60, "every due account settled") { try reader().unsweptDueAccounts() == 0 }
        XCTAssertEqual(worker.terminate(), 0, worker.log)

        let r = try reader()
        for i in [0, 1, users / 2, users - 1] {
            let b = try json(r.read(.balance(userId: "u\(i)")))
            XCTAssertEqual(b.int("tokensBalance"), 100, "u\(i): the grant's 50 lapsed once, the hold's 30 came back first")
            XCTAssertEqual(b.int("held"), 0)
            let lapses = try json(r.read(.history(userId: "u\(i)", limit: 10, offset: 0, operationType: "expiry", startDate: nil, endDate: nil)))
            XCTAssertEqual(lapses.int("total"), 1, "u\(i)")
        }
        XCTAssertEqual(try r.verify(), [])
        let (status, output) = try runTokenLedger(["verify", "--database", h.databasePath])
        XCTAssertEqual(status, 0, output)
        // Events are at least once: deduped by their ids, one per grant and one per hold.
        let events = try h.redis.xrange(h.keys.events)
        let lapses = events.filter { $0.value("event") == "grant.expired" }
        XCTAssertEqual(Set(lapses.compactMap { $0.value("grantId") }).count, users, "a lapse event lost in a crash is sent again")
        XCTAssertEqual(Set(events.filter { $0.value("event") == "hold.expired" }.compactMap { $0.value("holdId") }).count, users / 2)
        print("kill -9 during the sweep: \(kills) kills, \(lapses.count) grant.expired events for \(users) grants")
    }

    func json(_ result: CommandResult) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(result.json.utf8)) as! [String: Any]
    }
}
