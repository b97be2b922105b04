import Foundation
import Ledger
import LedgerModel
import Redis
import TestSupport
import XCTest

/// The `rollover` policy under `kill -9` during the renewal run: every account renewed once and
/// carried once, whatever chunk the kills interrupt.
final class RolloverCrashTests: XCTestCase {
    func testKillNineDuringARolloverRenewalRunCarriesNothingTwice() throws {
        let h = try WorkerHarness()
        let accounts = 4000
        var config = LedgerConfig(renewalPolicy: .rollover)
        config.rolloverMax = 60
        // Accounts opened 40 days ago, each with 70 of its first period's 100 left: due now.
        let clock = ManualClock(Date().addingTimeInterval(-40 * 86_400))
        do {
            let ledger = try Ledger(path: h.databasePath, config: config, clock: clock)
            for chunk in stride(from: 0, to: accounts, by: 1000) {
                _ = try ledger.apply((chunk..<chunk + 1000).map { Command(jobId: "open-\($0)", operation: .open(userId: "r-\($0)")) })
                _ = try ledger.apply((chunk..<chunk + 1000).map {
                    Command(jobId: "spend-\($0)", operation: .debit(userId: "r-\($0)", operationType: "x", amount: 30, metadata: nil))
                })
            }
        }
        let configFile = h.directory.appendingPathComponent("rollover.json").path
        try Data(#"{"renewal": {"policy": "rollover", "rolloverMax": 60, "batchSize": 100}}"#.utf8).write(to: URL(fileURLWithPath: configFile))

        func completed() throws -> Bool {
            try h.redis.xrange(h.keys.events).contains { $0.value("event") == "renewal.completed" && $0.value("tokensCarried") != nil }
        }
        var kills = 0
        for round in 0..<12 {
            let worker = try WorkerProcess(h, workerId: "roller-\(round)", configFile: configFile)
            usleep(useconds_t.random(in: 300_000...900_000))
            worker.kill9()
            kills += 1
            if try completed() { break }
        }
        let last = try WorkerProcess(h, workerId: "roller-last", configFile: configFile)
        try h.eventually(timeout: 120, "the renewal run completed", log: last.log) { try completed() }
        XCTAssertEqual(last.terminate(), 0, last.log)
        XCTAssertGreaterThanOrEqual(kills, 1)
        print("RolloverCrashTests: \(kills) kill -9 during the run")
        let ledger = try LedgerReader(path: h.databasePath, config: config)

        for n in stride(from: 0, to: accounts, by: 37) {
            let balance = try JSONSerialization.jsonObject(with: Data(ledger.read(.balance(userId: "r-\(n)")).json.utf8)) as! [String: Any]
            XCTAssertEqual(balance.int("tokensBalance"), 70 - 10 + 100, "r-\(n): carried 60 once, 10 lapsed once, renewed once")
            let grants = (balance["grants"] as? [[String: Any]] ?? []).compactMap { $0["grantId"] as? String }
            XCTAssertEqual(grants.filter { $0.hasPrefix("rollover:") }.count, 1, "r-\(n): \(grants)")
            let history = try JSONSerialization.jsonObject(with: Data(ledger.read(.history(
                userId: "r-\(n)", limit: 10, offset: 0, operationType: nil, startDate: nil, endDate: nil)).json.utf8)) as! [String: Any]
            XCTAssertEqual(history.int("total"), 4, "r-\(n): open, debit, one lapse, one renewal")
        }
        XCTAssertEqual(try Ledger.verify(path: h.databasePath), [])
    }
}
