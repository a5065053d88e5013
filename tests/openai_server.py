"""A real OpenAI-compatible server on 127.0.0.1 for the tests: ``transformers serve`` in its own process group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

SERVE = Path(sys.executable).with_name("transformers")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``transformers serve`` on a fixed port, so a restarted server is found at the same address."""

    def __init__(self, log: Path, port: int | None = None):
        self.port, self.log, self.proc = port or free_port(), log, None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout_s: float = 180) -> Server:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([str(SERVE), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=5)
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"transformers serve did not come up: {self.log.read_text()[-2000:]}") from None
                time.sleep(0.5)

    def kill(self) -> None:
        """SIGKILL, as a preempted or crashed server: no graceful shutdown of requests in flight."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
