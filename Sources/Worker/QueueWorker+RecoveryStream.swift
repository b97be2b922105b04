import Foundation
import Ledger
import LedgerModel
import Redis

extension QueueWorker {
    /// The age of the oldest job `P:applied` keeps, by this machine's clock against the entry
    /// id's Redis time: a replica lagging longer can no longer be recovered past. Nothing is
    /// recorded while the stream is empty (nothing acknowledged yet, nothing to lose).
    func sampleRecoveryStream(_ link: JobQueue) throws {
        guard let oldest = try link.redis.xrange(configuration.keys.applied, "-", "+", count: 1).first,
              let ms = RecoveryStream.milliseconds(ofStreamId: oldest.id) else { return }
        metrics.appliedStreamAge.record(Double(max(0, LedgerTime.milliseconds(Date()) - ms)) / 1000)
    }
}
