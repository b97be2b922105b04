import ArgumentParser
import Foundation
import JobWire
import Ledger
import LedgerModel

/// Query subcommands read the ledger file directly (read-only, beside a running worker).
protocol LedgerQuery: ParsableCommand {
    var settings: SettingsOptions { get }
    var userId: String { get }
    func operation() throws -> LedgerOperation
}

extension LedgerQuery {
    func run() throws {
        let settings = try self.settings.resolve()
        let operation = try operation()
        let partition = settings.partitioning.partition(of: userId)
        let result = try settings.waitingOut("reading the ledger") { try settings.openReader(partition: partition).read(operation) }
        print(Replies.fields(of: result.outcome))
        if !result.success { throw ExitCode(2) }
    }
}

func parseDate(_ text: String?, _ name: String) throws -> Date? {
    guard let text else { return nil }
    return try parseRequiredDate(text, name)
}

func parseRequiredDate(_ text: String, _ name: String) throws -> Date {
    guard let date = LedgerTime.parse(text) else { throw ValidationError("--\(name) must be an ISO 8601 date such as 2026-11-01T00:00:00.000Z") }
    return date
}

struct BalanceCommand: LedgerQuery {
    static let configuration = CommandConfiguration(commandName: "balance", abstract: "Print a user's balance, spent total and tier.")
    @OptionGroup var settings: SettingsOptions
    @Argument(help: "The user id.") var userId: String
    func operation() throws -> LedgerOperation { .balance(userId: userId) }
}

struct HistoryCommand: LedgerQuery {
    static let configuration = CommandConfiguration(commandName: "history", abstract: "Print a user's ledger entries, newest first.")
    @OptionGroup var settings: SettingsOptions
    @Argument(help: "The user id.") var userId: String
    @Option(help: "Entries per page (1-1000).") var limit: Int = 20
    @Option(help: "Entries to skip.") var offset: Int = 0
    @Option(help: "Only entries of this operation type.") var operationType: String?
    @Option(help: "Only entries at or after this time (ISO 8601).") var start: String?
    @Option(help: "Only entries at or before this time (ISO 8601).") var end: String?
    func operation() throws -> LedgerOperation {
        .history(userId: userId, limit: limit, offset: offset, operationType: operationType,
                 startDate: try parseDate(start, "start"), endDate: try parseDate(end, "end"))
    }
}

struct StatsCommand: LedgerQuery {
    static let configuration = CommandConfiguration(commandName: "stats", abstract: "Print a user's totals over a period.")
    @OptionGroup var settings: SettingsOptions
    @Argument(help: "The user id.") var userId: String
    @Option(help: "Start of the period (ISO 8601, inclusive).") var start: String
    @Option(help: "End of the period (ISO 8601, inclusive).") var end: String
    func operation() throws -> LedgerOperation {
        .statistics(userId: userId, startDate: try parseRequiredDate(start, "start"), endDate: try parseRequiredDate(end, "end"))
    }
}

struct EligibilityCommand: LedgerQuery {
    static let configuration = CommandConfiguration(commandName: "eligibility", abstract: "Print whether and when a user's allowance renews.")
    @OptionGroup var settings: SettingsOptions
    @Argument(help: "The user id.") var userId: String
    func operation() throws -> LedgerOperation { .eligibility(userId: userId) }
}

struct BalanceAtCommand: LedgerQuery {
    static let configuration = CommandConfiguration(commandName: "balance-at",
                                                    abstract: "Print a user's balance and spent total as they stood at a moment.")
    @OptionGroup var settings: SettingsOptions
    @Argument(help: "The user id.") var userId: String
    @Option(help: "The moment (ISO 8601).") var at: String
    func operation() throws -> LedgerOperation { .balanceAt(userId: userId, at: try parseRequiredDate(at, "at")) }
}
