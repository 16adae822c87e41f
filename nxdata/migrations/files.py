"""Migration files: ``migrations/{schema}/NNNN_{label}.sql``, numbering, checksums, headers.

A generated file starts with comment lines that nxdata reads back::

    -- nxdata migration licensing/0002_add_status
    -- requires: billing/0001_init

``requires`` names files of other schemas that must be applied first (cross-schema foreign keys);
``nxdata migrate --all`` orders files with it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ..errors import ConfigurationError, MigrationError

__all__ = [
    "MigrationFile",
    "checksum",
    "default_label",
    "list_files",
    "next_file",
    "parse_requires",
    "read_sql",
    "slugify",
]

_NAME = re.compile(r"^(\d{4,})_([a-z0-9_]+)\.sql$")
_EXPECTED = (
    "expected NNNN_label.sql, e.g. 0007_add_index.sql "
    "(four digits, an underscore, then lowercase letters, digits and underscores)"
)
_REQUIRES = re.compile(r"^--\s*requires:\s*(.+?)\s*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class MigrationFile:
    """One SQL file of one schema; ``key`` (``schema/NNNN_label``) identifies it in the journal."""

    schema: str
    number: int
    label: str
    path: Path
    requires: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        """The file name without ``.sql``: ``0002_add_status``."""
        return self.path.stem

    @property
    def key(self) -> str:
        """``schema/name``, as recorded in the journal and written in ``requires`` headers."""
        return f"{self.schema}/{self.name}"

    def read(self) -> str:
        """The file's SQL text; `MigrationError` when it cannot be read or is not UTF-8."""
        return read_sql(self.path)

    @property
    def checksum(self) -> str:
        """sha256 of the content (line endings normalized, so a checkout's CRLF is no change)."""
        return checksum(self.read())


def read_sql(path: Path) -> str:
    """A migration file's text: `MigrationError` (naming the file) when it is not UTF-8 or
    cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start : exc.start + 1].hex()
        raise MigrationError(
            f"{path} is not UTF-8 text (byte 0x{bad} at offset {exc.start}): save it as UTF-8"
        ) from None
    except OSError as exc:
        raise MigrationError(f"cannot read {path}: {exc.strerror or exc}") from None


def _bad_name(path: Path) -> MigrationError:
    # Suggest the nearest valid name when the intent is clear (a number, then a label).
    hint = ""
    match = re.match(r"^(\d+)[_\-\s]*(.*)$", path.stem)
    if match is not None:
        try:
            hint = f"; rename it to {int(match.group(1)):04d}_{slugify(match.group(2))}.sql"
        except ConfigurationError:
            hint = ""
    return MigrationError(f"{path} is not a valid migration file name: {_EXPECTED}{hint}")


def checksum(text: str) -> str:
    """sha256 hex digest of SQL text with ``\\r\\n`` read as ``\\n``."""
    return hashlib.sha256(text.replace("\r\n", "\n").encode("utf-8")).hexdigest()


def parse_requires(text: str) -> tuple[str, ...]:
    """The ``schema/name`` keys listed on ``-- requires:`` header lines."""
    keys: list[str] = []
    for match in _REQUIRES.finditer(text):
        keys += [k.strip() for k in match.group(1).split(",") if k.strip()]
    return tuple(keys)


def slugify(label: str) -> str:
    """A file-name label: lower case, ``[a-z0-9_]`` only. ``"Add status!"`` → ``add_status``."""
    slug = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
    if not slug:
        raise ConfigurationError(f"migration name {label!r} has no letters or digits")
    return slug[:60]


def default_label(now: datetime | None = None) -> str:
    """The label used without ``--name``: the UTC time, ``20250101_120000``."""
    return (now or datetime.now(UTC)).strftime("%Y%m%d_%H%M%S")


def list_files(root: Path, schema: str) -> list[MigrationFile]:
    """The migration files of one schema in number order (empty when the folder is missing).

    Files not ending in ``.sql`` (README, .gitkeep) are ignored. A ``.sql`` file with a wrong
    name is an error rather than silently skipped (it would never be applied), and so are two
    files with the same number, since their order would be ambiguous.
    """
    folder = root / schema
    if not folder.is_dir():
        return []
    found: dict[int, MigrationFile] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() != ".sql" or not path.is_file():
            continue
        match = _NAME.match(path.name)
        if match is None:
            raise _bad_name(path)
        number = int(match.group(1))
        if number in found:
            raise MigrationError(
                f"two migration files numbered {number} in {folder}: "
                f"{found[number].path.name} and {path.name}"
            )
        requires = parse_requires(read_sql(path))
        found[number] = MigrationFile(schema, number, match.group(2), path, requires)
    return [found[n] for n in sorted(found)]


def next_file(root: Path, schema: str, label: str) -> MigrationFile:
    """The next file of a schema: numbered one after the highest existing number."""
    existing = list_files(root, schema)
    number = existing[-1].number + 1 if existing else 1
    slug = slugify(label)
    return MigrationFile(schema, number, slug, root / schema / f"{number:04d}_{slug}.sql")
