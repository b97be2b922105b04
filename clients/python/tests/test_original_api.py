"""The original-API script runs unchanged (but for its import and its `db`) against the worker."""
import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import new_user
from tokenledger import TokenService

HERE = Path(__file__).resolve().parent


def test_examples_original_api_runs_against_the_worker(worker):
    user_id = new_user("script")
    TokenService(worker.client()).ensure_account(user_id)
    env = {**os.environ, "TOKENLEDGER_REDIS_URL": worker.redis_url, "TOKENLEDGER_PREFIX": worker.prefix,
           "PYTHONPATH": str(HERE.parent / "src")}
    run = subprocess.run([sys.executable, str(HERE.parent / "examples" / "original_api.py"), user_id],
                         env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr + run.stdout
    summary = json.loads(next(line[8:] for line in run.stdout.splitlines() if line.startswith("SUMMARY ")))
    # 100 - 10 + 10 (refund) - 5 + 2000 (the subscription's allocation) + 25 - 3
    assert summary == {"balance": 2117, "spent": 18, "earned": 2135, "entries": 7, "tier": "Professional",
                       "refused": "insufficient_tokens"}
    assert "refused: Insufficient tokens: " in run.stdout
    assert "metrics: chargeForOperation user=" in run.stdout
    assert f"metrics: chargeForOperation user={user_id} amount=10 success=True" in run.stdout
    assert "renewal: a run now would renew " in run.stdout  # a dry run of SubscriptionTier.Gift
