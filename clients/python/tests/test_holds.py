"""Reservations: hold, capture, release, holds and with_hold, against the real worker."""
import pytest

from conftest import opened
from tokenledger import TokenLedgerError, TokenService


def balance_of(service, user_id):
    b = service.get_balance(user_id)
    return b.tokens_balance, b.held, b.available


def test_a_hold_then_a_capture_of_less_frees_the_rest(service, metrics):
    user_id = opened(service, "hold")
    hold = service.hold(user_id, 40, expires_in=120)
    assert hold.success, hold.error
    assert (hold.hold_id, hold.amount, hold.available) == (hold.id, 40, 60)
    assert hold.expires_at.tzinfo is not None
    assert balance_of(service, user_id) == (100, 40, 60)
    assert service.get_balance(user_id).grants == []
    open_holds = service.holds(user_id)
    assert [(h.hold_id, h.amount, h.operation_type) for h in open_holds.holds] == [(hold.hold_id, 40, None)]
    assert open_holds.held == 40

    metrics.clear()
    capture = service.capture(user_id, hold.hold_id, 25, operation_type="llm_tokens")
    assert capture.success, capture.error
    assert (capture.new_balance, capture.tokens_amount, capture.released, capture.available) == (75, -25, 15, 75)
    assert isinstance(capture.ledger_entry_id, int)
    assert [(m.operation, m.amount, m.success) for m in metrics] == [("capture", 25, True)]
    assert balance_of(service, user_id) == (75, 0, 75)
    assert service.get_balance(user_id).tokens_spent == 25
    assert service.holds(user_id).holds == []

    again = service.capture(user_id, hold.hold_id)
    assert (again.success, again.code, again.state) == (False, "hold_closed", "captured")


def test_a_capture_above_the_hold_is_refused_and_a_release_frees_it_all(service):
    user_id = opened(service, "exceeds")
    hold = service.hold_for_operation(user_id, "image_generation")
    assert hold.success and hold.amount == 10
    over = service.capture(user_id, hold.hold_id, 11)
    assert (over.success, over.code, over.held, over.requested) == (False, "capture_exceeds_hold", 10, 11)
    assert over.error.startswith("Capture exceeds hold: ")

    released = service.release(user_id, hold.hold_id)
    assert released.success, released.error
    assert (released.hold_id, released.released, released.available) == (hold.hold_id, 10, 100)
    assert balance_of(service, user_id) == (100, 0, 100)
    late = service.capture(user_id, hold.hold_id)
    assert (late.code, late.state) == ("hold_closed", "released")
    assert service.release(user_id, "no-such-hold").code == "hold_not_found"


def test_a_hold_beyond_the_available_tokens_is_refused(service):
    user_id = opened(service, "short")
    assert service.hold(user_id, 70).success
    refused = service.hold(user_id, 40)
    assert (refused.success, refused.code, refused.available, refused.deficit) == (False, "insufficient_tokens", 30, 10)
    assert "Insufficient tokens" in refused.error
    assert service.charge_for_operation(user_id, "image_generation").success  # 10 of the 30 available
    assert service.hold(user_id, 5, expires_in=8 * 86_400).code == "invalid_expiry"


def test_with_hold_captures_what_the_function_reports_as_used(service, metrics):
    user_id = opened(service, "withhold")
    metrics.clear()

    def answer(hold):
        assert hold.available == 50
        assert service.get_balance(user_id).held == 50
        return 32, "the answer"
    result = service.with_hold(user_id, 50, answer, operation_type="llm_tokens")
    assert (result.value, result.used) == ("the answer", 32)
    assert (result.capture.new_balance, result.capture.released, result.capture.available) == (68, 18, 68)
    # one report for the whole call (the get_balance inside reports its own)
    assert [(m.operation, m.amount, m.success) for m in metrics if m.operation != "getBalance"] == [("withHold", 50, True)]
    entry = service.get_ledger().get_user_entries(user_id, limit=1)[0]
    assert (entry.operation_type, entry.tokens_amount) == ("llm_tokens", -32)

    none = service.with_hold(user_id, 10, lambda hold: 0)
    assert none.capture is None
    assert service.holds(user_id).holds == []
    assert balance_of(service, user_id) == (68, 0, 68)


def test_with_hold_releases_the_hold_when_the_function_raises(service, metrics):
    user_id = opened(service, "raises")
    metrics.clear()

    def fails(hold):
        raise RuntimeError("generation failed")
    with pytest.raises(RuntimeError, match="generation failed"):
        service.with_hold(user_id, 60, fails)
    assert balance_of(service, user_id) == (100, 0, 100)
    assert (metrics[0].operation, metrics[0].success, metrics[0].error) == ("withHold", False, "generation failed")

    with pytest.raises(TokenLedgerError) as refused:
        service.with_hold(user_id, 500, lambda hold: 1)
    assert refused.value.code == "insufficient_tokens" and str(refused.value).startswith("Insufficient tokens")
    with pytest.raises(TokenLedgerError) as exceeded:
        service.with_hold(user_id, 5, lambda hold: 6)
    assert exceeded.value.code == "capture_exceeds_hold"
    assert balance_of(service, user_id) == (100, 0, 100)  # the refused capture released its hold


def test_a_hold_sent_again_with_its_id_answers_duplicate(service):
    user_id = opened(service, "replay")
    hold_id = f"hold:{user_id}"
    first = service.hold(user_id, 30, job_id=hold_id)
    assert (first.success, first.duplicate) == (True, False)
    replay = service.hold(user_id, 30, job_id=hold_id)
    assert (replay.success, replay.duplicate, replay.hold_id) == (True, True, hold_id)
    assert service.get_balance(user_id).held == 30  # held once
