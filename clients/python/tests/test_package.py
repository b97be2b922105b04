"""The package as people install it: `python -m build` makes a wheel that installs into a fresh
virtual environment, and the guide's example runs from there against a worker."""
import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

from conftest import new_user
from tokenledger import TokenService

HERE = Path(__file__).resolve().parents[1]


def test_the_wheel_installs_into_a_fresh_venv_and_runs_the_guide_example(worker, tmp_path):
    dist = tmp_path / "dist"
    # --no-isolation: build with the setuptools at hand instead of fetching one
    build = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist)],
                           cwd=HERE, capture_output=True, text=True, timeout=300)
    shutil.rmtree(HERE / "build", ignore_errors=True)
    assert build.returncode == 0, build.stdout + build.stderr
    [wheel] = list(dist.glob("tokenledger-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "tokenledger/py.typed" in names and "tokenledger/service.py" in names

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    install = subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stdout + install.stderr

    user_id = new_user("packaged")
    TokenService(worker.client()).ensure_account(user_id)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(TOKENLEDGER_REDIS_URL=worker.redis_url, TOKENLEDGER_PREFIX=worker.prefix)
    # run from an empty folder, so that only the installed package can be imported
    run = subprocess.run([python, str(HERE / "examples" / "original_api.py"), user_id], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr + run.stdout
    where = subprocess.run([python, "-c", "import tokenledger; print(tokenledger.__file__)"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60)
    assert str(env_dir) in where.stdout, where.stdout + where.stderr
    summary = json.loads(next(line[8:] for line in run.stdout.splitlines() if line.startswith("SUMMARY ")))
    assert summary == {"balance": 2117, "spent": 18, "earned": 2135, "entries": 7, "tier": "Professional",
                       "refused": "insufficient_tokens"}
    assert f"metrics: chargeForOperation user={user_id} amount=10 success=True" in run.stdout
