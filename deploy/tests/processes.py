"""The processes a deploy test starts: each stopped at the end whatever happens, its log shown."""
from __future__ import annotations

import signal
import subprocess
import sys
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
