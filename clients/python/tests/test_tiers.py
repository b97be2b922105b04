"""set_tier, balance_at, and the guide's section 4: the tier an application writes with
`db.user.update` reaches the ledger, so the next renewal grants that tier's allocation."""
from datetime import datetime, timedelta, timezone

import pytest

from conftest import eventually, new_user, opened
from tokenledger import (BalanceBeforeFirstEntry, ChangeResult, MonthlyRenewalService, SubscriptionTier,
                         TokenLedgerError, TokenService, unwrap)


@pytest.fixture(scope="module")
def db(worker):
    return worker.client()


@pytest.fixture(scope="module")
def token_service(db):
    return TokenService(db)


def in_days(days: float) -> datetime:
    return datetime.now(timezone.utc) + timedelta(days=days)


def test_set_tier_sets_the_tier_and_expiry_without_an_entry_or_a_new_renewal_date(token_service):
    user_id = opened(token_service, "set-tier")
    before = token_service.get_balance(user_id)
    expiry = in_days(60).replace(microsecond=0)
    tier_set = unwrap(token_service.set_tier(user_id, SubscriptionTier.Professional, expiry, job_id=f"tier-{user_id}"))
    assert (tier_set.user_id, tier_set.tier, tier_set.previous_tier, tier_set.subscription_expires_at,
            tier_set.duplicate) == (user_id, "Professional", "Gift", expiry, False)
    assert (tier_set.last_renewal_at, tier_set.next_renewal_date) == (before.last_renewal_at, before.next_renewal_date)
    after = token_service.get_balance(user_id)
    assert (after.tier, after.tokens_balance, after.subscription_expires_at) == ("Professional", 100, expiry)
    assert token_service.get_ledger().get_user_entries_page(user_id).total == 1  # only the opening allocation

    replay = unwrap(token_service.set_tier(user_id, SubscriptionTier.Professional, expiry, job_id=f"tier-{user_id}"))
    assert replay.duplicate is True
    assert replay == tier_set.__class__(**{**tier_set.__dict__, "duplicate": True})

    kept = unwrap(token_service.set_tier(user_id, SubscriptionTier.Business))  # expiry left out: kept
    assert (kept.previous_tier, kept.subscription_expires_at) == ("Professional", expiry)
    cleared = unwrap(token_service.set_tier(user_id, SubscriptionTier.Gift, None))
    assert (cleared.tier, cleared.subscription_expires_at) == ("Gift", None)
    assert token_service.get_balance(user_id).subscription_expires_at is None


def test_a_tier_set_by_db_user_update_is_announced_on_p_balance_with_no_entry(db, token_service):
    user_id = opened(token_service, "tier-invalidation")
    messages = []
    unsubscribe = db.on_balance(messages.append)
    try:
        db.user.update(where={"id": user_id}, data={"tier": SubscriptionTier.Business})
        eventually(lambda: any(m.user_id == user_id for m in messages))
        message = next(m for m in messages if m.user_id == user_id)
        assert (message.tier, message.tokens_balance, message.ledger_entry_id, message.operation_type,
                message.tokens_amount) == ("Business", 100, None, None, None)
    finally:
        unsubscribe()


def test_set_tiers_refusals_are_results_with_their_codes(token_service):
    user_id = opened(token_service, "set-tier-refused")
    nobody = token_service.set_tier(new_user("nobody"), SubscriptionTier.Business)
    assert (nobody.success, nobody.code) == (False, "user_not_found")
    platinum = token_service.set_tier(user_id, "Platinum")
    assert (platinum.success, platinum.code) == (False, "unknown_tier")
    assert platinum.error is not None and platinum.error.startswith("Unknown tier: ")
    past = token_service.set_tier(user_id, SubscriptionTier.Business, in_days(-1))
    assert (past.success, past.code) == (False, "invalid_expiry")
    again = token_service.set_tier(user_id, "Platinum", job_id=platinum.id)  # a refusal is stored under its id
    assert (again.code, again.duplicate) == ("unknown_tier", True)
    assert token_service.get_balance(user_id).tier == "Gift"


def test_balance_at_answers_the_balance_as_it_stood_and_none_before_the_first_entry(token_service):
    user_id = opened(token_service, "balance-at")
    [opening] = token_service.get_ledger().get_user_entries(user_id)
    token_service.charge_for_operation(user_id, "image_generation")
    just_before = opening.created_at - timedelta(milliseconds=1)
    assert token_service.balance_at(user_id, just_before) == BalanceBeforeFirstEntry(user_id=user_id, at=just_before)
    then = token_service.balance_at(user_id, opening.created_at)
    assert then.exists
    assert (then.tokens_balance, then.tokens_spent, then.ledger_entry_id, then.created_at) == (
        100, 0, opening.id, opening.created_at)
    now = token_service.balance_at(user_id, in_days(1).isoformat())  # the future: the current totals
    assert (now.exists, now.tokens_balance, now.tokens_spent) == (True, 90, 10)
    with pytest.raises(TokenLedgerError) as raised:
        token_service.balance_at(new_user("nobody"), datetime.now(timezone.utc))
    assert raised.value.code == "user_not_found"


def test_the_guides_section_4_unchanged_leaves_the_account_on_its_tier_and_the_renewal_grants_its_allocation(
        worker, db, token_service):
    renewal_service = MonthlyRenewalService(db)
    user_id = opened(token_service, "guide-section-4")

    # ---- the guide's section 4, as written for the original service ----
    def handle_subscription_purchase(user_id: str, tier: SubscriptionTier, payment_id: str) -> ChangeResult:
        allocations = {SubscriptionTier.Gift: 100, SubscriptionTier.Professional: 2000, SubscriptionTier.Business: 10000}
        result = token_service.credit(user_id, "purchase", allocations[tier], {"tier": tier, "paymentId": payment_id})
        if not result.success:
            raise RuntimeError(result.error)
        db.user.update(where={"id": user_id},
                       data={"tier": tier, "subscription_expires_at": datetime.now(timezone.utc) + timedelta(days=30)})
        return result
    # ----

    bought = handle_subscription_purchase(user_id, SubscriptionTier.Professional, f"pi_{user_id}")
    assert bought.new_balance == 2100
    balance = token_service.get_balance(user_id)
    assert balance.tier == "Professional"
    assert abs(balance.subscription_expires_at - in_days(30)) < timedelta(minutes=1)

    token_service.debit(user_id, "api_call", 2050)
    worker.age([user_id], 35)  # restarts the worker; the subscription still runs 30 days from today
    renewed = unwrap(renewal_service.renew_user(user_id))
    assert (renewed.tier, renewed.downgraded, renewed.tokens_added, renewed.new_balance) == (
        "Professional", False, 1950, 2000)


def test_db_user_update_the_expiry_alone_keeps_the_tier_refusals_and_other_columns_raise(db, token_service):
    user_id = opened(token_service, "user-update")
    expiry = in_days(40).replace(microsecond=0)
    updated = db.user.update(where={"id": user_id}, data={"subscription_expires_at": expiry})
    assert (updated.tier, updated.subscription_expires_at) == ("Gift", expiry)
    twice = db.user.update(where={"id": user_id}, data={"subscription_expires_at": expiry})
    assert twice.id != updated.id  # an update is a job of its own
    cleared = db.user.update(where={"id": user_id}, data={"tier": "Business", "subscription_expires_at": None})
    assert cleared.subscription_expires_at is None
    for where, data, code in [({"id": new_user("nobody")}, {"tier": "Business"}, "user_not_found"),
                              ({"id": user_id}, {"tier": "Platinum"}, "unknown_tier"),
                              ({"id": user_id}, {"subscription_expires_at": in_days(-1)}, "invalid_expiry")]:
        with pytest.raises(TokenLedgerError) as raised:
            db.user.update(where=where, data=data)
        assert raised.value.code == code
    with pytest.raises(TypeError, match="email"):
        db.user.update(where={"id": user_id}, data={"tier": "Gift", "email": "a@example.com"})
    assert token_service.get_balance(user_id).tier == "Business"
