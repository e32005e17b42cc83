"""Run checks in worker processes, so that a model crashing or hanging the converter or LiteRT
is recorded as a ``crash`` instead of ending the fuzzing run.

Each worker is a long-lived process (as a user's would be: state one conversion leaves behind
is part of what is tested) that is restarted after it dies, times out, or has served
``recycle`` models.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Optional

from .checker import Outcome
from .model import ModelSpec

__all__ = ["Worker", "run_parallel"]


def _serve(conn, log_path: Optional[str], tflite_backend: str = "auto") -> None:
    """The worker's loop: a spec dict in, an outcome dict out; ``None`` ends it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
    if log_path:
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    from .checker import check

    conn.send("ready")  # imports done: the per-model timeout starts counting after this
    while True:
        job = conn.recv()
        if job is None:
            return
        conn.send(check(ModelSpec.from_dict(job), tflite_backend=tflite_backend).to_dict())


class Worker:
    """One checking process; ``check`` restarts it as needed and never raises for the model's sake.
    tflite_backend: ``export_tflite``'s backend for the TFLite target (``checker.TFLITE_BACKENDS``)."""

    def __init__(self, timeout: float = 300.0, log_path: Optional[str] = None, recycle: int = 150,
                 startup_timeout: float = 900.0, tflite_backend: str = "auto") -> None:
        self.timeout = timeout
        self.tflite_backend = tflite_backend
        self.startup_timeout = startup_timeout
        self.log_path = log_path
        self.recycle = recycle
        self._proc = None
        self._conn = None
        self._served = 0

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, self.log_path, self.tflite_backend), daemon=True)
        self._proc.start()
        child.close()
        self._served = 0
        if not (self._conn.poll(self.startup_timeout) and self._conn.recv() == "ready"):
            raise RuntimeError(f"the checking process did not start within {self.startup_timeout:.0f} s")

    def check(self, spec: ModelSpec) -> Outcome:
        if self._proc is None or not self._proc.is_alive() or self._served >= self.recycle:
            self.close()
            self._start()
        self._served += 1
        self._conn.send(spec.to_dict())
        if self._conn.poll(self.timeout):
            try:
                return Outcome.from_dict(self._conn.recv())
            except (EOFError, OSError):
                pass
            self._proc.join(10)
            code = self._proc.exitcode
            self._kill()
            return Outcome("crash", stage="process", error_type="ProcessDied",
                           message=f"the checking process died (exit code {code})")
        self._kill()
        return Outcome("crash", stage="process", error_type="Timeout",
                       message=f"no result after {self.timeout:.0f} s", seconds=self.timeout)

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(10)
        self._proc = None

    def close(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            try:
                self._conn.send(None)
                self._proc.join(20)
            except (OSError, BrokenPipeError):
                pass
        self._kill()


def run_parallel(jobs: Iterable, work: Callable[[Worker, object], object], workers: int = 2,
                 timeout: float = 300.0, log_path: Optional[str] = None, tflite_backend: str = "auto") -> list:
    """``work(worker, job)`` for every job, each thread with its own ``Worker``; results in job order."""
    local = threading.local()
    made: list[Worker] = []
    lock = threading.Lock()

    def run(job):
        if not hasattr(local, "worker"):
            local.worker = Worker(timeout=timeout, log_path=log_path, tflite_backend=tflite_backend)
            with lock:
                made.append(local.worker)
        return work(local.worker, job)

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(run, list(jobs)))
    finally:
        for w in made:
            w.close()
