"""The command line's terminal: stage-by-stage progress, and third-party noise kept out of sight.

``Quiet`` (unless ``--verbose``) sends file descriptor 2 -- where TensorFlow, absl, oneDNN,
XLA and LiteRT write from C++, whatever ``TF_CPP_MIN_LOG_LEVEL`` says -- and Python's
``sys.stdout``/``sys.stderr`` (torch.export prints partial graphs there) to a temporary file,
drops Python log records below ERROR (torch's warnings about data-dependent code, absl, Keras)
and hands Python warnings to a callback: torch2keras's own are shown as one line each, the rest
dropped. Our own messages go to the real standard error (``Quiet.stream``).

``Progress`` is the callback ``compile(progress=...)`` and ``export_tflite(progress=...)``
call with each stage's name (and, during a long stage, ``"<stage>: <how it is getting on>"``):
on a terminal a spinner with the running stage's time and progress and a line per finished
stage (rich); elsewhere one plain line per stage as it starts and per progress report.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import time
import warnings
from typing import Callable, Iterator, Optional, TextIO

from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

__all__ = ["Progress", "Quiet"]

_OWN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "GRPC_VERBOSITY": "ERROR", "GLOG_minloglevel": "3"}
# compile()'s stage names -> what the user reads
_LABELS = {"capture": "capture (torch.export)", "lower": "lowering to the IR", "passes": "IR passes",
           "emit": "building the Keras model", "validate": "checking against PyTorch"}


class Quiet:
    """While active (and not ``verbose``): C++ logs to a temporary file, Python log records
    below ERROR dropped, Python warnings passed to ``on_warning(message, ours)``."""

    def __init__(self, verbose: bool = False, on_warning: Optional[Callable[[Warning, bool], None]] = None) -> None:
        self.verbose = verbose
        self.on_warning = on_warning or (lambda message, ours: None)
        self.stream: TextIO = sys.stderr
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "Quiet":
        stack = self._stack.__enter__()
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("default")
        warnings.showwarning = self._show_warning
        if not self.verbose:
            stack.enter_context(_environment(_QUIET_ENV))
            stack.enter_context(_logging_disabled(logging.WARNING))
            self.stream = stack.enter_context(_stderr_to_file())
        return self

    def __exit__(self, *exc) -> None:
        self._stack.__exit__(*exc)
        self.stream = sys.stderr

    def _show_warning(self, message: "Warning | str", category: type, filename: str, lineno: int,
                      file: Optional[TextIO] = None, line: Optional[str] = None) -> None:
        ours = os.path.abspath(filename).startswith(_OWN_DIR) or type(message).__module__.startswith("torch2keras")
        if ours or self.verbose:
            self.on_warning(message if isinstance(message, Warning) else category(message), ours)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _logging_disabled(level: int) -> Iterator[None]:
    previous = logging.root.manager.disable
    logging.disable(level)
    try:
        yield
    finally:
        logging.disable(previous)


@contextlib.contextmanager
def _stderr_to_file() -> Iterator[TextIO]:
    """Point file descriptor 2, ``sys.stderr`` and ``sys.stdout`` at a temporary file (torch.export
    prints partial graphs with ``print(file=sys.stderr)``); yield a stream on the real standard
    error for our own messages."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    previous = sys.stdout, sys.stderr
    saved = os.dup(2)
    log = tempfile.TemporaryFile()
    os.dup2(log.fileno(), 2)
    real = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="replace") \
        if _writes_to_fd(previous[1], 2) else previous[1]
    into_log = os.fdopen(os.dup(log.fileno()), "w", buffering=1, encoding="utf-8", errors="replace")
    sys.stdout = sys.stderr = into_log
    try:
        yield real
    finally:
        for stream in (into_log, real):
            with contextlib.suppress(Exception):
                stream.flush()
        sys.stdout, sys.stderr = previous
        os.dup2(saved, 2)
        os.close(saved)
        into_log.close()
        if real is not previous[1]:
            real.close()
        log.close()


def _writes_to_fd(stream: TextIO, fd: int) -> bool:
    try:
        return stream.fileno() == fd
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return False


class Progress:
    """A run's stages on ``stream``: call it with a stage's name as the stage starts (``...``
    endings are dropped); ``close()`` ends the last one."""

    def __init__(self, stream: TextIO) -> None:
        self.console = Console(file=stream, highlight=False, soft_wrap=True)
        self.tty = self.console.is_terminal
        self.start = time.perf_counter()
        self.stage: Optional[str] = None
        self._stage_start = self.start
        self._live: Optional[Live] = None
        self._raw_stage: Optional[str] = None
        self.detail = ""

    def __call__(self, message: str) -> None:
        if self._raw_stage is not None and message.startswith(f"{self._raw_stage}: "):
            self._update(message[len(self._raw_stage) + 2:])  # how the running stage is getting on
            return
        self._end_stage()
        self._raw_stage, self.detail = message.rstrip(". "), ""
        name = message.rstrip(". ")
        self.stage = _LABELS.get(name, name)
        self._stage_start = time.perf_counter()
        if self.tty:
            if self._live is None:
                self._live = Live(console=self.console, get_renderable=self._running, transient=True,
                                  refresh_per_second=8, redirect_stdout=False, redirect_stderr=False)
                self._live.start()
        else:
            self.console.print(f"[{self._stage_start - self.start:6.1f}s] {self.stage}", markup=False)

    def _update(self, detail: str) -> None:
        self.detail = detail
        if not self.tty:
            self.console.print(f"[{time.perf_counter() - self.start:6.1f}s]   {self.stage}: {detail}", markup=False)

    def note(self, text: str, style: str = "yellow") -> None:
        """A line above the progress (a warning, a remark)."""
        self.console.print(Text(text, style=style if self.tty else ""))

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        self._end_stage()
        self.stage = self._raw_stage = None

    def _end_stage(self) -> None:
        if self.stage is None or not self.tty:
            return
        took = time.perf_counter() - self._stage_start
        self.console.print(Text.assemble(("✓ ", "green"), f"{self.stage:<48}", (f"{took:6.1f}s", "dim")))

    def _running(self) -> Spinner:
        took = time.perf_counter() - self._stage_start
        detail = f"  {self.detail}" if self.detail else ""
        return Spinner("dots", Text.assemble(f" {self.stage or '':<48}", (f"{took:6.1f}s", "dim"), (detail, "dim")))
