import Dispatch
import JobWire
import Ledger
import LedgerModel

/// Jobs taken together from the queue into a processing list of their own, oldest first, with
/// what each decodes to.
///
/// The list's name is the batch's identity: the batch leaves Redis only by an acknowledgement
/// that names that list (see `Acknowledgement`), never by a count of jobs at some end of a
/// shared list, so no job can be acknowledged in another one's place.
struct TakenBatch: Sendable {
    /// The member of `P:workers` and suffix of `P:processing:`: `<workerId>:<n>`.
    let list: String
    let raws: [[UInt8]]
    let jobs: [Result<Job, InvalidJob>]
    /// The valid jobs' commands, in order: the next transaction, prepared off the loop thread.
    let commands: [Command]
    /// Found in a processing list by recovery, not freshly taken: a worker may have committed it
    /// and died before its outbox left, so its duplicates write `job.applied` again (at least once).
    let recovered: Bool
    /// How long decoding took (on the thread that took the batch), for the batch's time budget.
    let decodeNanoseconds: Int64

    /// Decodes the jobs; on a partitioned ledger, a job of another partition's user is refused.
    init(list: String, raws: [[UInt8]], partitioning: Partitioning = .single, partition: Int = 0, recovered: Bool = false) {
        self.list = list
        self.raws = raws
        self.recovered = recovered
        let started = DispatchTime.now().uptimeNanoseconds
        jobs = raws.map { partitioning.admit(Job.decode($0), raw: $0, on: partition) }
        commands = jobs.compactMap { try? $0.get().command }
        decodeNanoseconds = Int64(DispatchTime.now().uptimeNanoseconds - started)
    }

    var isEmpty: Bool { raws.isEmpty }
    var count: Int { raws.count }

    /// The order of lists taken by one worker (`<n>` rises); a legacy list sorts first.
    var sequence: UInt64 { Self.sequence(of: list) }

    static func sequence(of list: String) -> UInt64 {
        guard let colon = list.lastIndex(of: ":") else { return 0 }
        return UInt64(list[list.index(after: colon)...]) ?? 0
    }
}
