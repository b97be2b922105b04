"""The original guide's examples, against the real worker."""
from datetime import datetime, timedelta, timezone

import pytest

from conftest import new_user, opened
from tokenledger import OperationType, SubscriptionTier, TokenLedgerError, TokenService, unwrap


def test_charging_for_an_image_with_a_refund_when_generation_fails(service):
    user_id = opened(service, "image")
    check = service.can_afford(user_id, "image_generation")
    assert (check.can_afford, check.cost, check.balance, check.deficit) == (True, 10, 100, 0)

    charge = service.charge_for_operation(user_id, "image_generation", {"prompt": "a red fox"})
    assert charge.success, charge.error
    assert charge.new_balance == 90
    assert isinstance(charge.ledger_entry_id, int)

    refund = service.refund(user_id, metadata={"reason": "generation_failed"}, refund_of=charge.id)
    assert refund.success, refund.error
    assert refund.new_balance == 100
    assert service.get_balance(user_id).tokens_spent == 0


def test_a_chat_message(service, metrics):
    user_id = opened(service, "chat")
    metrics.clear()
    result = service.charge_for_operation(user_id, "chatgpt_message", {"conversationId": "c-1"})
    assert (result.success, result.new_balance, result.tokens_amount, result.duplicate) == (True, 95, -5, False)
    assert len(metrics) == 1
    m = metrics[0]
    assert (m.operation, m.user_id, m.success, m.error) == ("chargeForOperation", user_id, True, None)
    assert m.duration_ms >= 0
    assert m.amount == 5  # a charge's amount is its cost


def test_metrics_name_a_charges_cost_as_its_amount_refused_or_not(service, metrics):
    user_id = opened(service, "charge-metrics")
    metrics.clear()
    service.charge_for_operation(user_id, "image_generation")
    service.debit(user_id, "api_call", 88)
    assert service.charge_for_operation(user_id, "image_generation").code == "insufficient_tokens"
    assert [(m.operation, m.amount, m.success) for m in metrics] == [
        ("chargeForOperation", 10, True), ("debit", 88, True), ("chargeForOperation", 10, False)]


def test_subscription_tier_and_operation_type(service):
    tier: SubscriptionTier = SubscriptionTier.Gift
    operation: OperationType = "image_generation"
    assert [t.value for t in SubscriptionTier] == ["Gift", "Professional", "Business"]
    user_id = opened(service, "tier")
    balance = service.get_balance(user_id)
    assert balance is not None and balance.tier == tier
    assert service.charge_for_operation(user_id, operation).success
    bought = unwrap(service.purchase(new_user("tier-buyer"), SubscriptionTier.Business, f"pi_{user_id}"))
    assert (bought.tier, bought.new_balance) == (SubscriptionTier.Business, 10_000)


def test_monitors_made_replaced_removed(service):
    user_id = opened(service, "monitor")
    made = unwrap(service.monitor(user_id, 50, monitor_id="low"))
    assert (made.monitor_id, made.threshold, made.armed, made.replaced, made.duplicate) == ("low", 50, True, False, False)
    replaced = unwrap(service.monitor(user_id, 500, monitor_id="low"))
    assert (replaced.threshold, replaced.armed, replaced.replaced) == (500, False, True)
    unnamed = unwrap(service.monitor(user_id, 10))
    assert unnamed.monitor_id == unnamed.id  # the job id by default
    assert unwrap(service.unmonitor(user_id, "low")).monitor_id == "low"
    assert service.unmonitor(user_id, "low").code == "monitor_not_found"
    negative = service.monitor(user_id, -1)
    assert negative.code == "invalid_threshold"
    assert negative.error is not None and negative.error.startswith("Invalid threshold: ")


def test_a_querys_refusal_is_raised_carrying_the_refusal_a_change_answers(service):
    user_id = opened(service, "refusals")
    changed = service.charge_for_operation(user_id, "teleportation")
    with pytest.raises(TokenLedgerError) as raised:
        service.can_afford(user_id, "teleportation")
    assert raised.value.refusal is not None
    assert (raised.value.refusal.code, raised.value.refusal.error, str(raised.value)) == (
        changed.code, changed.error, changed.error)
    with pytest.raises(TokenLedgerError) as unwrapped:
        unwrap(changed)
    assert unwrapped.value.refusal is changed


def test_a_subscription_purchase(service):
    user_id = new_user("buyer")  # purchase creates the account
    payment_id = f"pi_{user_id}"
    bought = service.purchase(user_id, "Professional", payment_id, 1)
    assert bought.success, bought.error
    assert (bought.new_balance, bought.tier) == (2000, "Professional")
    balance = service.get_balance(user_id)
    assert balance.tier == "Professional"
    assert isinstance(balance.subscription_expires_at, datetime)

    # the payment provider's webhook fires again: a new job id, the same payment, applied once
    again = service.purchase(user_id, "Professional", payment_id, 1)
    assert again.success and again.duplicate
    assert service.get_balance(user_id).tokens_balance == 2000


def test_the_balance(service):
    user_id = opened(service, "balance")
    balance = service.get_balance(user_id)
    assert (balance.tokens_balance, balance.tokens_spent, balance.tier) == (100, 0, "Gift")
    assert abs(balance.last_renewal_at - datetime.now(timezone.utc)) < timedelta(minutes=1)
    assert service.get_balance(new_user("nobody")) is None


def test_history_pages(service):
    user_id = opened(service, "history")
    for i in range(5):
        service.charge_for_operation(user_id, "chatgpt_message", {"n": i})
    ledger = service.get_ledger()
    first = ledger.get_user_entries(user_id, limit=2, offset=0)
    second = ledger.get_user_entries(user_id, limit=2, offset=2)
    assert [e.metadata for e in first] == [{"n": 4}, {"n": 3}]  # newest first
    assert [e.metadata for e in second] == [{"n": 2}, {"n": 1}]
    assert isinstance(first[0].created_at, datetime)
    page = ledger.get_user_entries_page(user_id, limit=2, offset=4)
    assert page.total == 6  # the opening allocation and five messages
    assert [e.operation_type for e in page.entries] == ["chatgpt_message", "renewal"]
    assert len(ledger.get_user_entries(user_id, limit=10, operation_type="renewal")) == 1
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    assert ledger.get_user_entries(user_id, limit=10, start_date=later) == []


def test_statistics(service):
    user_id = opened(service, "stats")
    service.charge_for_operation(user_id, "image_generation")
    service.charge_for_operation(user_id, "chatgpt_message")
    service.credit(user_id, "bonus", 20)
    now = datetime.now(timezone.utc)
    stats = service.get_ledger().get_user_statistics(user_id, now - timedelta(hours=1), now + timedelta(hours=1))
    assert (stats.total_spent, stats.total_earned, stats.net_change, stats.operation_count) == (15, 120, 105, 4)
    assert stats.by_operation["image_generation"] == {"count": 1, "tokens": -10}


def test_bonus_tokens(service):
    user_id = opened(service, "bonus")
    bonus = service.credit(user_id, "bonus", 50, {"campaign": "welcome"})
    assert bonus.success and bonus.new_balance == 150
    [entry] = service.get_ledger().get_user_entries(user_id, limit=1)
    assert (entry.operation_type, entry.metadata) == ("bonus", {"campaign": "welcome"})


def test_a_charge_once_retried_with_a_refund(service):
    user_id = opened(service, "retry")
    order = f"order-{user_id}"
    first = service.charge_for_operation(user_id, "image_generation", {"order": 1}, job_id=order)
    retried = service.charge_for_operation(user_id, "image_generation", {"order": 1}, job_id=order)
    assert first.success and retried.success
    assert (first.duplicate, retried.duplicate) == (False, True)
    assert retried.ledger_entry_id == first.ledger_entry_id
    assert retried.new_balance == 90
    refund = service.refund(user_id, 4, {"reason": "partial"}, refund_of=order)
    assert refund.success and refund.new_balance == 94
    assert len(service.get_ledger().get_user_entries(user_id, limit=10, operation_type="image_generation")) == 1


def test_the_monthly_report(service):
    user_id = opened(service, "report")
    service.debit(user_id, "api_call", 7)
    service.refund(user_id, 2, {"ticket": "T-1"})
    now = datetime.now(timezone.utc)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1) - timedelta(milliseconds=1)
    report = service.get_ledger().get_user_statistics(user_id, start, end)
    assert (report.total_spent, report.total_earned, report.net_change, report.operation_count) == (7, 102, 95, 3)
    assert report.by_operation["refund"] == {"count": 1, "tokens": 2}


def test_error_handling(service):
    user_id = opened(service, "errors")
    service.debit(user_id, "api_call", 97)

    poor = service.charge_for_operation(user_id, "chatgpt_message")
    assert not poor.success
    assert "Insufficient tokens" in poor.error
    assert poor.code == "insufficient_tokens"
    assert (poor.balance, poor.required, poor.deficit, poor.new_balance) == (3, 5, 2, 3)
    check = service.can_afford(user_id, "chatgpt_message")
    assert (check.can_afford, check.cost, check.balance, check.deficit) == (False, 5, 3, 2)

    stranger = service.charge_for_operation(new_user("stranger"), "chatgpt_message")
    assert stranger.code == "user_not_found" and "User not found" in stranger.error

    assert service.charge_for_operation(user_id, "teleportation").code == "unknown_operation"
    with pytest.raises(TokenLedgerError) as raised:
        service.can_afford(user_id, "teleportation")
    assert raised.value.code == "unknown_operation" and "Unknown operation" in str(raised.value)

    assert service.debit(user_id, "api_call", 0).code == "invalid_amount"
    assert service.debit(user_id, "api_call", 2.5).code == "invalid_job"  # a dead letter, with a failure reply
    assert service.open_account(user_id).code == "account_exists"
    assert service.refund(user_id, 1000, refund_of="no-such-charge").code == "charge_not_found"
    with pytest.raises(TokenLedgerError) as raised:
        service.get_ledger().get_user_entries(user_id, limit=5000)
    assert raised.value.code == "invalid_limit"
    assert service.get_balance(user_id).tokens_balance == 3
