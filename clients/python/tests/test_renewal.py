"""The guide's renewal examples: a manual renewal, the scheduled batch renewal, a dry run."""
import pytest

from conftest import new_user
from tokenledger import MonthlyRenewalService, Renewal, TokenService

MANUAL, BATCH_A, BATCH_B, PAID = (new_user(n) for n in ("manual", "batch-a", "batch-b", "paid"))


@pytest.fixture(scope="module")
def services(worker):
    db = worker.client()
    tokens, renewals = TokenService(db), MonthlyRenewalService(db)
    for user_id in (MANUAL, BATCH_A, BATCH_B):
        tokens.ensure_account(user_id)
    tokens.purchase(PAID, "Professional", f"pi_{PAID}")
    for user_id in (MANUAL, BATCH_A, BATCH_B, PAID):
        tokens.debit(user_id, "api_call", 30)
    return tokens, renewals


def test_a_manual_renewal(worker, services):
    _, renewals = services
    early = renewals.check_eligibility(MANUAL)
    assert (early.eligible, early.reason) == (False, "not_yet_due")
    assert early.days_until_renewal >= 28
    refused = renewals.renew_user(MANUAL)
    assert (refused.success, refused.code) == (False, "not_eligible")
    assert renewals.get_cron_expression() == "0 2 * * *"

    worker.age([MANUAL, BATCH_A, BATCH_B, PAID], 35)  # restarts the worker
    due = renewals.check_eligibility(MANUAL)
    assert (due.eligible, due.reason, due.days_until_renewal) == (True, "renewal_due", 0)
    renewed = renewals.renew_user(MANUAL)
    assert renewed.success, renewed.error
    assert (renewed.tokens_added, renewed.new_balance) == (30, 100)  # tops the Gift allocation back up
    assert renewals.check_eligibility(MANUAL).eligible is False


def test_a_dry_run(services):
    tokens, renewals = services
    dry = renewals.renew_all_eligible(dry_run=True)
    assert dry.dry_run is True
    assert sorted(r.user_id for r in dry.renewals) == sorted([BATCH_A, BATCH_B, PAID])
    assert tokens.get_balance(BATCH_A).tokens_balance == 70  # nothing changed


def test_the_scheduled_batch_renewal(services):
    tokens, renewals = services
    gift = renewals.renew_all_eligible(tier="Gift", limit=10, continue_on_error=True)
    assert (gift.total_processed, gift.successful, gift.failed, gift.errors) == (2, 2, 0, [])
    assert sorted(r.user_id for r in gift.renewals) == sorted([BATCH_A, BATCH_B])
    assert renewals.renew_all_eligible().renewals == [Renewal(PAID, "Professional", 30, 2000)]
    assert renewals.renew_all_eligible().total_processed == 0
    assert tokens.get_balance(BATCH_B).tokens_balance == 100
