"""Generate the sync modules from their asyncio originals (``python nxdata/_async_to_sync.py``).

The async file is the source of truth; the sync twin is the same code with ``await``/``async``
dropped and paired names swapped, then formatted with ruff. ``--check`` exits 1 when a committed
sync file is out of date (the test suite runs the same check).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

__all__ = ["PAIRS", "generate", "main"]

HERE = Path(__file__).parent

PAIRS: dict[str, str] = {
    "database_async.py": "database.py",
    "transaction_async.py": "transaction.py",
    "repository_async.py": "repository.py",
}

# Longest names first so that e.g. AsyncTransactionBlock is not half-replaced.
_NAMES: dict[str, str] = {
    "AsyncSoftDeletableRepository": "SoftDeletableRepository",
    "AsyncTransactionBlock": "TransactionBlock",
    "AsyncTransaction": "Transaction",
    "AsyncRepository": "Repository",
    "AsyncDatabase": "Database",
    "AsyncConnectionPool": "ConnectionPool",
    "AsyncConnection": "Connection",
    "AsyncServerCursor": "ServerCursor",
    "AsyncCursor": "Cursor",
    "AsyncCopy": "Copy",
    "AsyncIterator": "Iterator",
    "AsyncGenerator": "Generator",
    "AsyncIterable": "Iterable",
    "asynccontextmanager": "contextmanager",
    "database_async": "database",
    "transaction_async": "transaction",
    "repository_async": "repository",
    "nxdata_async_transaction": "nxdata_transaction",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "aclose": "close",
    "ALock": "Lock",
    "asleep": "sleep",
}

_TOKENS = [
    (re.compile(r"\basync def\b"), "def"),
    (re.compile(r"\basync with\b"), "with"),
    (re.compile(r"\basync for\b"), "for"),
    (re.compile(r"\bawait "), ""),
    (re.compile(r"\b(" + "|".join(map(re.escape, _NAMES)) + r")\b"), None),
]


def _convert(source: str, origin: str) -> str:
    out = source
    for pattern, replacement in _TOKENS:
        if replacement is None:
            out = pattern.sub(lambda m: _NAMES[m.group(1)], out)
        else:
            out = pattern.sub(replacement, out)
    # AsyncGenerator[T, None] → Generator[T, None, None]; Awaitable[R] → R
    out = re.sub(r"\bGenerator\[([^\[\]]+), None\]", r"Generator[\1, None, None]", out)
    out = re.sub(r"\bAwaitable\[(\w+)\]", r"\1", out)
    header = f"# Generated from {origin} by nxdata/_async_to_sync.py: do not edit.\n"
    return header + out


def _ruff(args: list[str], text: str, filename: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--stdin-filename", filename, "-"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
        cwd=HERE.parent,
    )
    if done.returncode not in (0, 1) or not done.stdout:
        raise RuntimeError(f"ruff {args[0]} failed on {filename}: {done.stderr}")
    return done.stdout


def _ruff_format(text: str, filename: str) -> str:
    # Renaming can unsort imports and __all__; let ruff fix that, then format.
    text = _ruff(["check", "--fix-only", "--select", "F401,I,RUF022", "--quiet"], text, filename)
    return _ruff(["format", "--quiet"], text, filename)


def generate(async_name: str) -> str:
    """The sync module text for ``nxdata/<async_name>``."""
    source = (HERE / async_name).read_text()
    sync_name = PAIRS[async_name]
    return _ruff_format(_convert(source, f"nxdata/{async_name}"), f"nxdata/{sync_name}")


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check`` verify) every sync twin; returns the exit status."""
    check = "--check" in (argv if argv is not None else sys.argv[1:])
    stale = []
    for async_name, sync_name in PAIRS.items():
        if not (HERE / async_name).exists():
            continue
        text = generate(async_name)
        target = HERE / sync_name
        if target.exists() and target.read_text() == text:
            continue
        stale.append(sync_name)
        if not check:
            target.write_text(text)
    if check and stale:
        print("out of date: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
