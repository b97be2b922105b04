"""A script written against the original TokenService, as the guide shows it, in Python. Only the
import and the `db` line differ from the original: `db` was the database handle, and is now a
connection to the queue (TOKENLEDGER_REDIS_URL, TOKENLEDGER_REDIS_PASSWORD, TOKENLEDGER_PREFIX).

    python3 examples/original_api.py <user_id>
"""
import json
import sys
from datetime import datetime, timedelta, timezone

from tokenledger import ChangeResult, MonthlyRenewalService, OperationType, SubscriptionTier, TokenService, connect


def main(user_id: str) -> None:
    db = connect()

    token_service = TokenService(
        db,
        cache_invalidation_callback=lambda uid: print(f"cache: invalidate {uid}"),
        metrics_callback=lambda m: print(f"metrics: {m.operation} user={m.user_id} amount={m.amount} success={m.success} "
                                         f"{m.duration_ms:.1f}ms"),
    )
    renewal_service = MonthlyRenewalService(db)

    # Charging for an image, with a refund when generation fails
    check = token_service.can_afford(user_id, "image_generation")
    if not check.can_afford:
        print(f"Not enough tokens: need {check.deficit} more")
        return
    charge = token_service.charge_for_operation(user_id, "image_generation", {"prompt": "a lighthouse at dusk"})
    if not charge.success:
        raise RuntimeError(charge.error)
    generation_failed = True
    if generation_failed:
        token_service.refund(user_id, check.cost, {"reason": "generation_failed",
                                                   "ledgerEntryId": charge.ledger_entry_id})

    # A chat message
    chat_operation: OperationType = "chatgpt_message"
    chat = token_service.charge_for_operation(user_id, chat_operation, {"conversationId": "conv-1"})
    print(f"chat: success={chat.success} balance={chat.new_balance}")

    # A subscription purchase: the allocation credited, then the tier and its expiry written to the
    # user table, which the original service read (`db.user` now writes them to the ledger: setTier)
    def handle_subscription_purchase(user_id: str, tier: SubscriptionTier, payment_id: str) -> ChangeResult:
        allocations = {SubscriptionTier.Gift: 100, SubscriptionTier.Professional: 2000, SubscriptionTier.Business: 10000}
        result = token_service.credit(user_id, "purchase", allocations[tier], {"tier": tier, "paymentId": payment_id})
        if not result.success:
            raise RuntimeError(result.error)
        db.user.update(where={"id": user_id},
                       data={"tier": tier, "subscription_expires_at": datetime.now(timezone.utc) + timedelta(days=30)})
        return result
    handle_subscription_purchase(user_id, SubscriptionTier.Professional, f"pi_{user_id}")

    # Bonus tokens, and a metered API call
    token_service.credit(user_id, "bonus", 25, {"reason": "referral"})
    token_service.debit(user_id, "api_call", 3)

    # Error handling
    too_much = token_service.debit(user_id, "batch_export", 1_000_000)
    if not too_much.success and "Insufficient tokens" in too_much.error:
        print(f"refused: {too_much.error}")

    # The balance, the history and the monthly report
    balance = token_service.get_balance(user_id)
    if balance is None:
        print(f"no account for {user_id}")
        return
    print(f"balance: {balance.tokens_balance} tokens, {balance.tokens_spent} spent, tier {balance.tier}, "
          f"renewed {balance.last_renewal_at.isoformat()}")
    entries = token_service.get_ledger().get_user_entries(user_id, limit=10, offset=0)
    for entry in entries:
        print(f"entry: {entry.created_at.isoformat()} {entry.operation_type} {entry.tokens_amount} -> {entry.balance_after}")
    now = datetime.now(timezone.utc)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    report = token_service.get_ledger().get_user_statistics(user_id, month_start, now)
    print(f"report: spent {report.total_spent}, earned {report.total_earned}, net {report.net_change}, "
          f"{report.operation_count} operations")

    # Renewal
    eligibility = renewal_service.check_eligibility(user_id)
    print(f"renewal: eligible={eligibility.eligible} ({eligibility.reason}), in {eligibility.days_until_renewal} days")
    preview = renewal_service.renew_all_eligible(dry_run=True, tier=SubscriptionTier.Gift)
    print(f"renewal: a run now would renew {preview.total_processed} accounts; "
          f"cron {renewal_service.get_cron_expression()}")

    print("SUMMARY " + json.dumps({"balance": balance.tokens_balance, "spent": report.total_spent,
                                   "earned": report.total_earned, "entries": len(entries), "tier": balance.tier,
                                   "refused": None if too_much.success else too_much.code}))
    db.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "demo-user")
