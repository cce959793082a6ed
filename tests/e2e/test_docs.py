"""Every command and code block of README.md and docs/*.md runs as written (issue 13).

The blocks run against one real ``takt up`` that this module starts in a temporary folder,
where the docs assume it: on 127.0.0.1:8000 (the default port, so no block is rewritten),
with ``.takt/`` in the folder the blocks run in, and no ``TAKT_*`` variable set: what a
newcomer has after ``make run`` in a fresh clone. If port 8000 is taken the test skips
locally (it fails in CI).

How a block is read, by its fence's language:

- ``sh``, ``bash``: one bash script (``set -euo pipefail``); it must exit 0.
- ``console``: each ``$ command`` runs (bash, stderr with stdout), and the lines up to the
  next ``$`` are its output, compared line by line. ``# exit status N`` after an output
  line says the command fails with status N; other ``# ...`` remarks are not output.
- ``python``: the venv's interpreter runs it; it must exit 0.
- ``json``: it must parse.
- Any other language, or none, is text (a diagram, XML, JSON with comments).

A block that cannot run here (it starts the stack itself, needs Azurite or another
machine, or is a signature) carries ``<!-- not run: the reason -->`` on the line before
its fence: it is reported as skipped with that reason, and the marker is refused on a
block that is not code.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.helpers import ROOT, wait_until
from tests.support.processes import alive, descendants

pytestmark = pytest.mark.e2e

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
API = "http://127.0.0.1:8000"  # what the docs say; the stack listens there
RUNNABLE = {"sh", "bash", "console", "python"}
_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w-]*)\s*$")
_NOT_RUN = re.compile(r"^\s*<!-- not run: (?P<reason>.+?) -->\s*$")
_EXIT_STATUS = re.compile(r"\s+# exit status (\d+)\s*$")
_REMARK = re.compile(r"\s+# .*$")


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language, its text, and why it does not run."""

    path: Path
    line: int
    lang: str
    text: str
    not_run: str | None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT).as_posix()}:{self.line}"


def blocks_of(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, with the ``not run`` marker before each."""
    found: list[Block] = []
    lines = path.read_text().splitlines()
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if fence is None:
            index += 1
            continue
        indent = len(fence["indent"])
        end = index + 1
        while lines[end].strip() != "```":
            end += 1
        body = "\n".join(line[indent:] for line in lines[index + 1 : end])
        before = next((lines[i] for i in range(index - 1, -1, -1) if lines[i].strip()), "")
        marker = _NOT_RUN.match(before)
        found.append(
            Block(path, index + 1, fence["lang"], body + "\n", marker["reason"] if marker else None)
        )
        index = end + 1
    return found


ALL_BLOCKS = [block for path in DOCS for block in blocks_of(path)]
TO_RUN = [b for b in ALL_BLOCKS if b.lang in RUNNABLE and b.not_run is None]
NOT_RUN = [b for b in ALL_BLOCKS if b.not_run is not None]
JSON = [b for b in ALL_BLOCKS if b.lang == "json" and b.not_run is None]


# The stack the docs talk to


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        # As uvicorn binds: connections of an earlier run still in TIME_WAIT do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _healthy() -> bool:
    try:
        return httpx.get(f"{API}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def newcomer_env() -> dict[str, str]:
    """The environment of a shell in a fresh clone after ``make run``: no ``TAKT_*`` or
    ``FLOWER_*`` variable, and the venv active (its ``takt`` and ``python`` first on the
    PATH), as the docs say their examples assume."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAKT_", "FLOWER_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder like a fresh clone's, with ``takt up`` running in it on port 8000."""
    if not _port_free(8000):
        reason = "port 8000, where the docs expect Takt, is taken on this machine"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    here = tmp_path_factory.mktemp("first-hour")
    # A clone holds `make run`'s virtualenv; the README activates it (`. .venv/bin/activate`).
    (here / ".venv").symlink_to(Path(sys.executable).parent.parent)
    log = (here / "up.log").open("ab")
    up = subprocess.Popen(
        [sys.executable, "-m", "scheduler", "up", "--no-flower"],
        cwd=here,
        env=newcomer_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(_healthy, timeout=60, message=f"takt up on port 8000 (log: {here}/up.log)")
        yield here
    finally:
        group = descendants(up.pid)
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=30)
        except subprocess.TimeoutExpired:
            up.kill()
        for pid in group:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        log.close()


# Running a block


def _run(
    argv: list[str], folder: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=folder,
        env=newcomer_env(),
        input=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=90,
        check=False,
    )


def console_steps(block: Block) -> list[tuple[str, list[str], int]]:
    """The ``$ command`` lines of a console block, each with its output and exit status."""
    steps: list[tuple[str, list[str], int]] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], [], 0))
            continue
        assert steps, f"{block.where}: output before the first `$ ` command"
        command, output, status = steps[-1]
        code = _EXIT_STATUS.search(line)
        if code:
            status = int(code[1])
        output.append(_REMARK.sub("", line).rstrip())
        steps[-1] = (command, output, status)
    return [(command, _trimmed(output), status) for command, output, status in steps]


def _trimmed(lines: list[str]) -> list[str]:
    while lines and not lines[-1]:
        lines = lines[:-1]
    return lines


def run_block(block: Block, folder: Path) -> None:
    """Run one block as the module docstring says; an AssertionError names it."""
    if block.lang in ("sh", "bash"):
        done = _run(["bash", "-euo", "pipefail", "-s"], folder, stdin=block.text)
        assert done.returncode == 0, f"{block.where} exited {done.returncode}:\n{done.stdout}"
    elif block.lang == "python":
        done = _run([sys.executable, "-"], folder, stdin=block.text)
        assert done.returncode == 0, f"{block.where} exited {done.returncode}:\n{done.stdout}"
    else:
        for command, expected, status in console_steps(block):
            done = _run(["bash", "-o", "pipefail", "-c", command], folder)
            actual = _trimmed([line.rstrip() for line in done.stdout.splitlines()])
            assert (done.returncode, actual) == (status, expected), (
                f"{block.where}: `{command}` exited {done.returncode} (the doc says {status})"
                f" and printed:\n{done.stdout}"
            )


# The tests


def test_the_blocks_follow_the_convention() -> None:
    # Every marker sits before a block of code, and says why
    misplaced = [b.where for b in NOT_RUN if b.lang not in RUNNABLE | {"json"}]
    assert not misplaced, f"a `not run` marker before a block that is not code: {misplaced}"
    # Every marker in the text belongs to a block (no stray one that marks nothing)
    markers = sum(
        1 for path in DOCS for line in path.read_text().splitlines() if _NOT_RUN.match(line)
    )
    assert markers == len(NOT_RUN)
    # The examples a newcomer follows first are among the blocks that run
    run_from = {b.path.name for b in TO_RUN}
    assert {"README.md", "client.md", "azure-compatibility.md"} <= run_from, run_from
    assert any(b.lang == "console" for b in TO_RUN)


@pytest.mark.parametrize("block", JSON, ids=lambda b: b.where)
def test_a_json_block_parses(block: Block) -> None:
    json.loads(block.text)


@pytest.mark.parametrize(
    "path",
    sorted({b.path for b in TO_RUN}, key=DOCS.index),
    ids=lambda p: p.relative_to(ROOT).as_posix(),
)
def test_the_blocks_of_a_doc_run_as_written(path: Path, folder: Path) -> None:
    # Given the stack a newcomer has after `make run`, in the folder they work in
    # When each block of the doc runs there, in order (a later block may use an earlier one's)
    # Then each runs as written and prints what the doc shows
    for block in (b for b in TO_RUN if b.path == path):
        run_block(block, folder)


@pytest.mark.parametrize("block", NOT_RUN, ids=lambda b: b.where)
def test_a_block_marked_not_run(block: Block) -> None:
    pytest.skip(f"{block.where} ({block.lang}) not run: {block.not_run}")
