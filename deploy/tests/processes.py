"""The processes a deploy test starts (each stopped at the end whatever happens, its log shown), and
waiting for what they do."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path


class Processes:
    def __init__(self, folder: Path):
        self.folder = folder
        self.running: list[tuple[str, subprocess.Popen, object]] = []

    def start(self, name: str, argv: list[str], env: dict | None = None) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "a+")
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.folder)
        self.running.append((name, process, log))
        return process

    def stop(self, process: subprocess.Popen, timeout: float = 30) -> int:
        """SIGTERM, then the exit status (the worker finishes its batch and exits 0)."""
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        return process.wait(timeout=timeout)

    def close(self):
        """Newest first: SIGTERM, a kill after 30 s, and the tail of each log on stderr."""
        for name, process, log in reversed(self.running):
            if process.poll() is None:
                try:
                    self.stop(process)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            log.seek(0)
            sys.stderr.write(f"--- {name} log ---\n{log.read()[-4000:]}")
            log.close()


def eventually(what: str, condition, timeout: float = 60, every: float = 0.2):
    """The first true value of `condition()` within `timeout`; failures before it (a server still
    starting) are retried, and the last one is shown if time runs out."""
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = condition()
        except (OSError, ValueError, AssertionError) as error:
            value, last_error = None, error
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s (last error: {last_error!r})"
        time.sleep(every)
