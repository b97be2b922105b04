import ArgumentParser
import Worker

@main
struct TokenLedger: AsyncParsableCommand {
    /// The worker notes a SIGTERM or SIGINT from its first instruction on (see
    /// `EarlyShutdownSignals`); the other subcommands keep the default, so Ctrl-C stops them.
    static func main() async {
        if CommandLine.arguments.dropFirst().first == "worker" { EarlyShutdownSignals.install() }
        await main(nil)
    }

    static let configuration = CommandConfiguration(
        commandName: "tokenledger",
        abstract: "An exact, fast token ledger fed by Redis queues.",
        discussion: """
            Producers LPUSH JSON jobs on <prefix>:jobs; `tokenledger worker` applies them to an
            append-only SQLite ledger, replies on each job's replyTo list and publishes balance
            invalidations on <prefix>:balance. See docs/PROTOCOL.md.

            Settings come from flags, then the environment (TOKENLEDGER_REDIS_URL,
            TOKENLEDGER_DATABASE, TOKENLEDGER_PREFIX, TOKENLEDGER_CONFIG, TOKENLEDGER_HTTP,
            TOKENLEDGER_REDIS_USERNAME, TOKENLEDGER_REDIS_PASSWORD, TOKENLEDGER_REDIS_PASSWORD_FILE,
            TOKENLEDGER_WORKER_ID, TOKENLEDGER_BATCH_SIZE, TOKENLEDGER_LOG_LEVEL,
            TOKENLEDGER_PARTITION_COUNT, TOKENLEDGER_PARTITIONS, TOKENLEDGER_EVENTS,
            TOKENLEDGER_RECOVERY_WINDOW_SECONDS), then the
            config file, then defaults. The console (/console on the operator endpoints) is on only
            with a token: TOKENLEDGER_CONSOLE_TOKEN or TOKENLEDGER_CONSOLE_TOKEN_FILE.
            """,
        subcommands: [
            WorkerCommand.self, EnqueueCommand.self, BalanceCommand.self, HistoryCommand.self,
            StatsCommand.self, EligibilityCommand.self, BalanceAtCommand.self, RenewCommand.self, DeadLettersCommand.self,
            VerifyCommand.self, MigrateCommand.self, BackupCommand.self, RestoreCommand.self, RepartitionCommand.self, EventsCommand.self,
        ]
    )
}
