"""Write ``src/recsite_client/_sync.py`` from ``_async.py`` (as httpcore does with
``unasync``): ``python clients/python/unasync.py``; ``--check`` exits 1 if it is stale."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent / "src" / "recsite_client"
SUBS = [
    (
        r'"""The asynchronous client\..*?"""',
        '"""The synchronous client: generated from ``_async.py`` by\n'
        '``clients/python/unasync.py``; do not edit."""',
    ),
    (r"\bimport asyncio\b", "import time"),
    (r"\basyncio\.sleep\b", "time.sleep"),
    (r"\basync def __aenter__", "def __enter__"),
    (r"\basync def __aexit__", "def __exit__"),
    (r"\baclose\b", "close"),
    (r"\basync def\b", "def"),
    (r"\bawait ", ""),
    (r"\bAsyncClient\b", "Client"),
]


def generate() -> str:
    text = (HERE / "_async.py").read_text()
    for pattern, replacement in SUBS:
        text = re.sub(pattern, replacement, text, count=0, flags=re.S)
    return formatted(text)


def formatted(text: str) -> str:
    """``ruff format`` of the text (lines that lost an ``await`` may now fit on one)."""
    ruff = Path(sys.executable).parent / "ruff"
    command = str(ruff) if ruff.exists() else shutil.which("ruff")
    if command is None:
        return text
    done = subprocess.run(
        [command, "format", "--stdin-filename", str(HERE / "_sync.py"), "-"],
        input=text,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def main() -> int:
    target = HERE / "_sync.py"
    text = generate()
    if "--check" in sys.argv:
        return 0 if target.exists() and target.read_text() == text else 1
    target.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
