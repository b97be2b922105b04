import JobWire
import Ledger
import LedgerModel

/// Puts a committed command's events into its outbox, in the order they happened: what the
/// ledger settled before the job (`hold.expired`, `grant.expired`), the job's own `job.applied`,
/// then the `balance.low` alerts its changes fired.
///
/// `job.applied` is written on a job's first application; a duplicate delivery writes none,
/// except in a batch found by recovery in a processing list: its first commit's outbox may never
/// have left (a crash after the commit), so it is written again there (at least once).
struct EventWriter {
    /// `XADD ... MAXLEN ~` length; nil when the stream is off (alerts are still published).
    let streamMaxLength: Int?
    let metrics: WorkerMetrics

    func write(_ result: CommandResult, of job: Job, recovered: Bool, into outbox: inout Outbox) {
        write(result.events, into: &outbox)
        // A query writes none, a dry-run `renewAll` included (its type is a mutation's; its
        // command only reads).
        if streamMaxLength != nil, !job.command.operation.isQuery, !result.duplicate || recovered {  // off: not even built
            outbox.event(Self.jobApplied(job, result), streamMaxLength: streamMaxLength)
        }
        write(result.alerts, into: &outbox)
    }

    /// Events of the ledger's own changes (a sweep, a renewal chunk), counted for the metrics
    /// (`tokenledger_events_total` counts an outbox's `events` once, where it is sent).
    func write(_ events: [LedgerEvent], into outbox: inout Outbox) {
        for e in events {
            outbox.event(e, streamMaxLength: streamMaxLength)
            switch e.name {
            case LedgerEvent.balanceLow: metrics.alertsFired.increment()
            case LedgerEvent.holdExpired: metrics.holdsExpired.increment()
            case LedgerEvent.grantExpired:
                metrics.tokensLapsed.increment(by: -(Int(e.value("tokensAmount") ?? "0") ?? 0))
            default: break
            }
        }
    }

    /// `job.applied` of a job's result (written by the wire target): a replay reports its
    /// entry's first time.
    static func jobApplied(_ job: Job, _ result: CommandResult) -> LedgerEvent {
        StreamEvents.jobApplied(job, refusalCode: result.refusalCode, own: result.own,
                                atMs: result.duplicate ? (result.own.map { LedgerTime.milliseconds($0.at) } ?? result.atMs) : result.atMs)
    }
}
