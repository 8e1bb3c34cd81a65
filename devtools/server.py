"""The real function server on 127.0.0.1, for tests and benchmarks: one way to start it, wait
for it and stop it.

It is started exactly as it is served (function/gunicorn.conf.py, the README's serve command and
the containers): gunicorn is the master, and the function runs in its forked worker, which is
whose pids and memory `worker_pids` and `rss_kib` report.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parents[1]
MAIN = ROOT / "function" / "main.py"
GUNICORN_CONF = ROOT / "function" / "gunicorn.conf.py"
HOST = "127.0.0.1"  # never anything else: this drives our own server only


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def read_rss_kib(pid: int) -> int:
    """Resident set size of one process, from /proc/PID/status (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def child_pids(pid: int) -> list[int]:
    """Direct children of `pid`, from /proc/*/stat (the field after the command is the state,
    then the parent pid; the command may contain spaces and parentheses, so split at the last)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # the process ended while we looked
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return sorted(children)


class FunctionServer:
    """`gunicorn --config function/gunicorn.conf.py` serving the function `stylize` of `source`
    (FUNCTION_SOURCE; default function/main.py) on 127.0.0.1:<free port>.

    As a context manager it starts the server, waits until /healthz answers (any status: the
    caller judges the answer) and always stops it. `start` alone spawns it without waiting,
    for callers that time the start themselves. `env` adds to (and overrides) the current
    environment; `model_dir` sets MODEL_DIR. The log goes to `log_path`, else to a temporary
    file removed on stop.
    """

    def __init__(
        self,
        model_dir: Path | str | None = None,
        env: dict[str, str] | None = None,
        *,
        source: Path = MAIN,
        log_path: Path | None = None,
        startup_s: float = 120.0,
        cwd: Path | None = None,
    ):
        model_env = {"MODEL_DIR": str(model_dir)} if model_dir is not None else {}
        self.env = {**os.environ, **model_env, **(env or {})}
        self.source = source
        self.startup_s = startup_s
        self.cwd = cwd
        self._own_log = log_path is None
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix="styleserve-", suffix=".log")
            os.close(fd)
            log_path = Path(name)
        self.log_path = log_path
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> FunctionServer:
        self.start()
        try:
            self.wait_until_up()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        cmd = [sys.executable, "-m", "gunicorn", "--config", str(GUNICORN_CONF),
               "--bind", f"{HOST}:{self.port}"]  # fmt: skip
        env = {**self.env, "FUNCTION_TARGET": "stylize", "FUNCTION_SOURCE": str(self.source)}
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so the worker goes with it
            )

    def wait_until_up(self, poll_s: float = 0.1) -> None:
        deadline = time.monotonic() + self.startup_s
        while True:
            if self.proc is None or self.proc.poll() is not None:
                code = self.proc.returncode if self.proc else None
                raise RuntimeError(f"server exited ({code}):\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # it answers
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not up after {self.startup_s:g} s:\n{self.log_tail()}")
            time.sleep(poll_s)

    def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM to the whole process group, then SIGKILL after `grace_s`. (Not SIGINT: with
        gunicorn 27 an idle server ignores it for its whole graceful timeout, where SIGTERM
        takes well under a second.)"""
        if self.proc is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=grace_s)
                break
            except subprocess.TimeoutExpired:
                continue
        self.proc = None
        if self._own_log:
            self.log_path.unlink(missing_ok=True)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def worker_pids(self) -> list[int]:
        assert self.proc is not None, "the server is not running"
        return child_pids(self.proc.pid)

    def rss_kib(self) -> int:
        """The workers' resident memory, summed (WORKERS=1 by default: one worker)."""
        total = 0
        for pid in self.worker_pids():
            with contextlib.suppress(OSError):  # a worker exiting right now
                total += read_rss_kib(pid)
        return total

    def healthy(self) -> bool:
        """/healthz answers 200 with status ok."""
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=10) as r:
                return bool(r.status == 200 and json.load(r).get("status") == "ok")
        except (OSError, ValueError):
            return False


@contextlib.contextmanager
def function_server(
    source: Path,
    log: Path,
    env: dict[str, str] | None = None,
    startup_s: float = 60,
    cwd: Path | None = None,
) -> Iterator[str]:
    """A FunctionServer on `source`, logging to `log`; yields its URL."""
    with FunctionServer(env=env, source=source, log_path=log, startup_s=startup_s, cwd=cwd) as s:
        yield s.url
