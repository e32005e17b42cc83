"""Runs every command and Python block of README.md and docs/*.md verbatim.

A fenced ```python block runs in a Python subprocess (the repository on PYTHONPATH, a new
temporary folder as its working directory); a ```bash / ```sh / ```console block runs through
bash, with ``torch2keras`` and ``python`` meaning this interpreter (``python -m torch2keras``).
An HTML comment on the line before a block declares it:

    <!-- snippet: slow -->                  marked slow (``pytest -m slow``), not in the default run
    <!-- snippet: skip reason=TEXT -->      skipped, with TEXT as the visible reason
    <!-- snippet: files=model.py,net.py --> FIXTURES' files are written to the folder first
    <!-- snippet: continue -->              runs after the previous runnable block of the file, in
                                            the same folder (and, for Python, the same process)

Tokens combine (``<!-- snippet: continue files=net.py -->``). ```text blocks are output and are
not run; any other fenced block must be skipped with a reason. ``test_every_block_is_declared``
fails on a block that is none of these, on an unknown directive and on a skip without a reason.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterator, Optional

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PYTHON_LANGS = {"python"}
SHELL_LANGS = {"bash", "sh", "console"}
OUTPUT_LANGS = {"text"}
TIMEOUT_S = {"default": 300, "slow": 1800}

FIXTURES = {
    # a small CNN factory for the command line examples: torch2keras convert net.py:build ...
    "net.py": '''\
import torch
from torch import nn


def build() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.Hardswish(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
''',
    # a token model for --input-dtype int64 / --inputs tokens.npz
    "tokens.py": '''\
import torch
from torch import nn


class Tagger(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(100, 16)
        self.fc = nn.Linear(16, 5)

    def forward(self, tokens):
        return self.fc(torch.relu(self.embed(tokens)))


def build() -> nn.Module:
    torch.manual_seed(0)
    return Tagger()
''',
    # the validation example: a module whose custom converter is wrong on purpose
    "model.py": '''\
import torch
from torch import nn


class Scale(nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.scale = Scale(2.0)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        y = self.scale(y)
        return self.fc(y.mean((2, 3)))
''',
}

_DIRECTIVE = re.compile(r"^\s*<!--\s*snippet:\s*(.*?)\s*-->\s*$")
_FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)\s*$")


@dataclass
class Block:
    """One fenced block of a documentation file and its directive."""

    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    slow: bool = False
    skip: Optional[str] = None  # the reason
    files: list[str] = field(default_factory=list)
    cont: bool = False
    problems: list[str] = field(default_factory=list)
    chain: str = ""  # id of the first block of its chain

    @property
    def id(self) -> str:
        path = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path.name
        return f"{path}:{self.line}"

    @property
    def runnable(self) -> bool:
        return self.lang in PYTHON_LANGS | SHELL_LANGS and self.skip is None


def _parse_directive(text: str, block: Block) -> None:
    reason = re.search(r"\breason=(.*)$", text)
    if reason:
        block.skip = reason.group(1).strip()
        text = text[:reason.start()]
    for token in text.split():
        if token == "slow":
            block.slow = True
        elif token == "continue":
            block.cont = True
        elif token == "skip":
            block.skip = block.skip or ""
        elif token.startswith("files="):
            block.files = [f for f in token[len("files="):].split(",") if f]
            block.problems += [f"no fixture named {f!r} (tests/test_docs_snippets.py FIXTURES)"
                               for f in block.files if f not in FIXTURES]
        else:
            block.problems.append(f"unknown snippet directive {token!r}")
    if reason and "skip" not in text.split():
        block.problems.append("reason= without skip")


def parse_blocks(path: Path) -> list[Block]:
    """The fenced blocks of ``path`` with their directives; chains linked by ``continue``."""
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.groups()
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        body = [ln[len(indent):] if ln.startswith(indent) else ln for ln in lines[i + 1:end]]
        block = Block(path, i + 1, lang.lower(), "\n".join(body) + "\n")
        prev = i - 1
        while prev >= 0 and not lines[prev].strip():
            prev -= 1
        directive = _DIRECTIVE.match(lines[prev]) if prev >= 0 else None
        if directive:
            _parse_directive(directive.group(1), block)
        blocks.append(block)
        i = end + 1
    _link_chains(blocks)
    return blocks


def _link_chains(blocks: list[Block]) -> None:
    previous: Optional[Block] = None
    for block in blocks:
        if not block.runnable:
            if block.cont:
                block.problems.append("continue on a block that is not run")
            continue
        if block.cont:
            if previous is None:
                block.problems.append("continue without a runnable block before it")
                block.chain = block.id
            else:
                block.chain = previous.chain
                if previous.slow and not block.slow:
                    block.problems.append(f"continues the slow block {previous.id}: declare it slow too")
        else:
            block.chain = block.id
        previous = block
    heads = {b.id: b for b in blocks}
    for block in blocks:  # a chain is slow as a whole when any block of it is
        if block.runnable and block.slow and block.chain in heads:
            for other in blocks:
                if other.chain == block.chain:
                    other.slow = True


ALL_BLOCKS = [b for path in DOC_FILES for b in parse_blocks(path)]
RUNNABLE = [b for b in ALL_BLOCKS if b.lang in PYTHON_LANGS | SHELL_LANGS]


def _problems(block: Block) -> list[str]:
    problems = list(block.problems)
    if block.lang in OUTPUT_LANGS:
        if block.slow or block.files or block.cont or block.skip is not None:
            problems.append("a ```text block (output) takes no snippet directive")
    elif block.lang not in PYTHON_LANGS | SHELL_LANGS and not block.skip:
        problems.append(f"a ```{block.lang or '(no language)'} block is neither run nor skipped with a reason: "
                        "use ```text for output, or <!-- snippet: skip reason=... -->")
    if block.skip is not None and not block.skip:
        problems.append("skip without a reason (<!-- snippet: skip reason=... -->)")
    return problems


def test_every_block_is_declared() -> None:
    """Every fenced block is run, slow, skipped with a reason, or ```text output."""
    bad = [f"{b.id}: {p}" for b in ALL_BLOCKS for p in _problems(b)]
    assert not bad, "\n".join(bad)
    assert len(RUNNABLE) >= 10, "the documentation has lost its examples"


def test_fixture_parser_sees_directives() -> None:
    """The parser reads directives, chains and skips (a broken parser would run nothing)."""
    text = ("<!-- snippet: files=net.py -->\n```python\nx = 1\n```\n\n<!-- snippet: continue -->\n```bash\n"
            "echo\n```\n\n<!-- snippet: skip reason=needs a GPU -->\n```bash\nnvidia-smi\n```\n"
            "```text\nout\n```\n```\nbare\n```\n")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.md"
        path.write_text(text)
        blocks = parse_blocks(path)
    assert [(b.lang, b.line) for b in blocks] == [("python", 2), ("bash", 7), ("bash", 12), ("text", 15),
                                                  ("", 18)]
    assert blocks[0].files == ["net.py"] and blocks[1].cont and blocks[1].chain == blocks[0].chain
    assert blocks[2].skip == "needs a GPU" and not blocks[2].runnable
    assert _problems(blocks[3]) == [] and _problems(blocks[4])


def test_readme_lists_every_convert_option() -> None:
    """The README's option table of ``torch2keras convert`` names every option its parser has."""
    from torch2keras.cli import build_parser

    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    convert = subparsers.choices["convert"]
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("Every option of `torch2keras convert"):readme.index("Exit codes:")]
    options = [o for a in convert._actions for o in a.option_strings if o not in ("-h", "--help")]
    assert len(options) >= 20
    missing = [o for o in options if f"`{o}" not in table]
    assert not missing, f"README.md's convert table lacks {missing}"
    assert "| `MODEL` |" in table


def test_readme_is_short() -> None:
    """The README stays a user's page; the details live in docs/."""
    assert len((ROOT / "README.md").read_bytes()) < 16000


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_links_resolve() -> None:
    """Every relative link of the documentation names a file that exists (and a heading in it)."""
    broken = []
    for path in DOC_FILES:
        text = re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", path.read_text(), flags=re.S))
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, fragment = target.partition("#")
            linked = (path.parent / file).resolve() if file else path
            if not linked.exists():
                broken.append(f"{path.name}: {target}")
            elif fragment and linked.suffix == ".md":
                headings = {_slug(h) for h in re.findall(r"^#+ (.*)$", linked.read_text(), flags=re.M)}
                if fragment not in headings:
                    broken.append(f"{path.name}: {target} (no such heading)")
    assert not broken, broken


# -- running ------------------------------------------------------------------------------------

# One Python process runs the Python blocks, so that torch, TensorFlow and Keras are imported
# once: each chain gets a new ``__main__`` module (its own globals), its own folder as the
# working directory, and the modules imported from the previous chain's folder forgotten.
_KERNEL = r"""
import json, os, sys, traceback, types
_proto = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
sys.stdout = sys.stderr
sys.path.insert(0, "")
_module, _old = None, None
for _message in sys.stdin:
    _request = json.loads(_message)
    if _request["fresh"]:
        for _name, _mod in list(sys.modules.items()):
            if _old and (getattr(_mod, "__file__", None) or "").startswith(_old + os.sep):
                del sys.modules[_name]
        _old = _request["cwd"]
        os.chdir(_old)
        _module = types.ModuleType("__main__")
        _module.__builtins__ = __builtins__
        sys.modules["__main__"] = _module
    try:
        exec(compile(_request["code"], _request["name"], "exec"), _module.__dict__)
        _reply = {"ok": True}
    except BaseException:
        _reply = {"ok": False, "error": traceback.format_exc()}
    sys.stderr.flush()
    _proto.write(json.dumps(_reply) + "\n")
    _proto.flush()
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("CUDA_VISIBLE_DEVICES", "-1")
    env.setdefault("MPLBACKEND", "Agg")
    return env


class Kernel:
    """The Python process that runs the Python blocks, its output in a log file."""

    def __init__(self, log: IO[str]) -> None:
        self.log = log
        self.proc = subprocess.Popen([sys.executable, "-c", _KERNEL], cwd=tempfile.gettempdir(), env=_env(),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)

    def run(self, code: str, name: str, cwd: Path, fresh: bool, timeout: float) -> Optional[str]:
        """None when the block ran; otherwise why not (the kernel is unusable after a timeout)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"code": code, "name": name, "cwd": str(cwd), "fresh": fresh}) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.close()
            return f"no result after {timeout:.0f} s"
        line = self.proc.stdout.readline()
        if not line:
            return f"the Python process died (exit {self.proc.wait()})"
        reply = json.loads(line)
        return None if reply["ok"] else f"raised:\n{reply['error']}"

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Session:
    """The shared log and Python process of a test run."""

    def __init__(self) -> None:
        self.log = tempfile.TemporaryFile("w+")
        self.kernel: Optional[Kernel] = None
        self.epoch = 0  # counts kernels started: a chain must stay in one

    def python(self) -> Kernel:
        if self.kernel is None or not self.kernel.alive:
            self.kernel = Kernel(self.log)
            self.epoch += 1
        return self.kernel

    def mark(self) -> int:
        self.log.flush()
        return self.log.seek(0, 2)

    def output(self, start: int) -> str:
        self.log.flush()
        self.log.seek(start)
        text = self.log.read()
        self.log.seek(0, 2)
        return text[-6000:]

    def close(self) -> None:
        if self.kernel is not None:
            self.kernel.close()
        self.log.close()


class ChainRun:
    """The folder the blocks of one chain share, and how far the chain has run."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.dir = Path(tempfile.mkdtemp(prefix="t2k_docs_"))
        self.epoch: Optional[int] = None  # the kernel its Python blocks run in
        self.done: list[str] = []

    def run(self, block: Block, timeout: float) -> Optional[str]:
        """Run ``block``; what went wrong (with the block's output), or None."""
        for name in block.files:
            (self.dir / name).write_text(FIXTURES[name])
        start = self.session.mark()
        if block.lang in PYTHON_LANGS:
            kernel = self.session.python()
            if self.epoch is not None and self.epoch != self.session.epoch:
                pytest.fail(f"{block.id}: the Python process of its chain is gone")
            fresh, self.epoch = self.epoch is None, self.session.epoch
            problem = kernel.run(block.code, block.id, self.dir, fresh, timeout)
        else:
            problem = self._run_shell(block, timeout)
        if problem:
            return f"{block.id} {problem}\noutput:\n{self.session.output(start)}"
        self.done.append(block.id)
        return None

    def _run_shell(self, block: Block, timeout: float) -> Optional[str]:
        py = sys.executable
        preamble = (f'torch2keras() {{ "{py}" -m torch2keras "$@"; }}\n'
                    f'python() {{ "{py}" "$@"; }}\npython3() {{ "{py}" "$@"; }}\n')
        code = block.code
        if block.lang == "console":  # "$ command" lines are commands, the rest is output
            code = "\n".join(ln[2:] for ln in code.splitlines() if ln.startswith("$ ")) + "\n"
        try:
            proc = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", preamble + code], cwd=self.dir, env=_env(),
                                  stdout=self.session.log, stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            return f"gave no result after {timeout:.0f} s"
        return f"exited with {proc.returncode}" if proc.returncode else None

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


_CHAINS: dict[str, ChainRun] = {}


@pytest.fixture(scope="module")
def session() -> Iterator["Session"]:
    shared = Session()
    yield shared
    for chain in _CHAINS.values():
        chain.close()
    _CHAINS.clear()
    shared.close()


def _param(block: Block) -> object:
    marks = []
    if block.slow:
        marks.append(pytest.mark.slow)
    if block.skip is not None:
        marks.append(pytest.mark.skip(reason=f"{block.id}: {block.skip or '(no reason: fails the check above)'}"))
    return pytest.param(block, id=block.id, marks=marks)


@pytest.mark.parametrize("block", [_param(b) for b in RUNNABLE])
def test_snippet(block: Block, session: Session) -> None:
    """The block runs without an error (after the blocks before it in its chain)."""
    members = [b for b in RUNNABLE if b.runnable and b.chain == block.chain]
    position = members.index(block)
    timeout = TIMEOUT_S["slow" if block.slow else "default"]
    chain = _CHAINS.get(block.chain)
    if chain is None or chain.done != [b.id for b in members[:position]]:
        if chain is not None:
            chain.close()
        chain = _CHAINS[block.chain] = ChainRun(session)
        for earlier in members[:position]:  # selected alone, or after a failure: run what it continues
            problem = chain.run(earlier, timeout)
            assert problem is None, f"an earlier block of the chain failed: {problem}"
    try:
        problem = chain.run(block, timeout)
        assert problem is None, problem
    finally:
        if block is members[-1] or chain.done[-1:] != [block.id]:
            chain.close()
            _CHAINS.pop(block.chain, None)
