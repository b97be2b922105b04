/// Assertions at write, each paired with a check of `verify` at read: the state a transaction is
/// about to commit must satisfy what `verify` would demand of the file, or the transaction rolls
/// back (`LedgerInvariantError`: not a storage cause the worker can see pass, so the batch waits
/// in its list, reported, rather than commit a state `verify` would reject).
///
/// - held >= 0, granted >= 0, held + granted <= balance: `reserved_beyond_balance` (and
///   `held_mismatch`, `granted_mismatch` for the rows behind them), checked for every account
///   whose balance or extras columns the transaction changed (`flush`, `flushExtras`);
/// - a job id's one effect: `LedgerTail.storeJob` (`job_applied_twice`, `job_result_missing`).
extension LedgerTransaction {
    func assertReservations(_ a: AccountRecord) throws {
        let (reserved, overflow) = a.held.addingReportingOverflow(a.granted)
        guard a.held >= 0, a.granted >= 0, !overflow, reserved <= a.balance else {
            throw LedgerInvariantError("the account of \(a.userId) would hold \(a.held) and keep \(a.granted) granted tokens on a balance of \(a.balance)")
        }
    }
}
