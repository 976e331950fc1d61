"""Real ``ftrun`` processes, started in milliseconds: forked from one that has imported ftrun once.

Tests that kill runs need runs in processes of their own, and starting Python, torch and
transformers takes from seconds to most of a minute on a busy CI machine. The ``forker``
fixture starts one such process for the session; each run is a fork of it, which has
everything imported and has run nothing (so no thread pool is copied into the child). A run
can be killed with SIGKILL after a delay, by the parent, or from inside at the n-th call of a
function that writes files (``kill_at``), and can be one of several processes that train
together over gloo, with the environment torchrun would give them.

Registered in conftest.py's ``pytest_plugins``, so that the session has one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

#: The forking process: reads one run a line on stdin, answers how it ended on stdout.
SERVER = r'''
import json, os, signal, sys, time

import ftrun.cli, ftrun.runner, ftrun.api.plugin_manager  # everything a run imports, imported once
import ftrun.plugins.text_classification, ftrun.plugins.ner, ftrun.plugins.translation, ftrun.plugins.question_answering

protocol = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)  # what the imports print goes to stderr, not into the answers


def kill_at(module, name, call):
    """SIGKILL this process at the call-th call of module.name; a file it writes is left half written."""
    import importlib

    owner = importlib.import_module(module)
    original = getattr(owner, name)
    calls = [0]

    def dying(*args, **kwargs):
        calls[0] += 1
        if calls[0] == call and name == "replace":  # before the rename: the file is written, not in place
            os.kill(os.getpid(), signal.SIGKILL)
        result = original(*args, **kwargs)
        if calls[0] == call:  # after the write: cut the file in half, as a kill in the middle of it leaves it
            target = next((a for a in (*args[1:2], *args[:1], *kwargs.values()) if isinstance(a, (str, os.PathLike)) and os.path.isfile(a)), None)
            if target is not None:
                os.truncate(target, os.path.getsize(target) // 2)
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, name, dying)


def child(request, rank):
    log = os.open(request["log"] + (f".{rank}" if request["ranks"] > 1 else ""), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.environ.update(request["env"])
    sys.path[:0] = [path for path in request["path"] if path not in sys.path]  # the plugin modules the test wrote
    if request["ranks"] > 1:
        os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(request["ranks"]), LOCAL_WORLD_SIZE=str(request["ranks"]), GROUP_RANK="0")
    if request.get("kill_at") and rank == 0:
        kill_at(*request["kill_at"])
    code = 1
    try:
        code = ftrun.cli.main(request["args"])
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


for line in sys.stdin:
    request = json.loads(line)
    start = time.monotonic()
    pids = []
    for rank in range(request["ranks"]):
        pid = os.fork()
        if pid == 0:
            child(request, rank)
        pids.append(pid)
    codes = {}
    deadline = start + request["kill_after"] if request.get("kill_after") is not None else None
    while len(codes) < len(pids):
        for pid in pids:
            if pid not in codes:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    codes[pid] = os.waitstatus_to_exitcode(status)
        if len(codes) < len(pids) and (any(code != 0 for code in codes.values()) or (deadline and time.monotonic() > deadline)):
            time.sleep(0.5 if codes else 0)  # as torchrun: the others of a failed run are stopped
            for pid in pids:
                if pid not in codes:
                    os.kill(pid, signal.SIGKILL)
        time.sleep(0.005)
    protocol.write(json.dumps({"codes": [codes[pid] for pid in pids], "seconds": time.monotonic() - start}) + "\n")
    protocol.flush()
'''


@dataclasses.dataclass
class Ended:
    """How a forked run ended: each process's exit code (-9 when SIGKILL ended it), its time and output."""

    codes: list[int]
    seconds: float
    log: Path

    @property
    def code(self) -> int:
        return self.codes[0]

    @property
    def output(self) -> str:
        return "".join(path.read_text(errors="replace") for path in sorted(self.log.parent.glob(self.log.name + "*")))

    def __repr__(self) -> str:
        return f"Ended(codes={self.codes}, seconds={self.seconds:.1f}, output={self.output[-3000:]!r})"


class Forker:
    """Runs ``ftrun ARGS`` in forks of one process that has imported it."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.count = 0
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        with open(logs / "forking-process.log", "w") as errors:
            self.server = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, env=env, text=True)

    def run(
        self,
        *args: Any,
        env: dict[str, str] | None = None,
        kill_after: float | None = None,
        kill_at: tuple[str, str, int] | None = None,
        ranks: int = 1,
    ) -> Ended:
        """``ftrun ARGS``, killed ``kill_after`` seconds after it starts, or at the n-th call of ``kill_at = (module, function, n)``.

        ``ranks`` > 1 starts that many processes training together over gloo, on a free port.
        """
        self.count += 1
        log = self.logs / f"run-{self.count}.log"
        extra = dict(env or {})
        if ranks > 1:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                extra.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(probe.getsockname()[1]))
        request = {
            "args": [str(a) for a in args],
            "env": extra,
            "path": sys.path,
            "kill_after": kill_after,
            "kill_at": kill_at,
            "ranks": ranks,
            "log": str(log),
        }
        self.server.stdin.write(json.dumps(request) + "\n")
        self.server.stdin.flush()
        answer = self.server.stdout.readline()
        if not answer:
            raise RuntimeError(f"the forking process ended (exit code {self.server.wait()})")
        ended = json.loads(answer)
        return Ended(ended["codes"], ended["seconds"], log)

    def close(self) -> None:
        self.server.stdin.close()
        self.server.wait(timeout=60)


@pytest.fixture(scope="session")
def forker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Forker]:
    """A :class:`Forker`, started once for the session."""
    forker = Forker(tmp_path_factory.mktemp("forked-runs"))
    yield forker
    forker.close()
