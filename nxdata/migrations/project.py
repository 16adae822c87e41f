"""Project settings for the migration tools: ``[tool.nxdata]`` in pyproject.toml.

    [tool.nxdata]
    models = "schema"          # the package whose modules declare the schemas and processes
    migrations = "migrations"  # the folder of SQL files, one subfolder per schema
    ignore_schemas = ["audit", "tmp_*"]   # schemas made outside nxdata: never reported or dropped
    unmanaged = ["index sale.idx_*", "grant reporting"]   # objects nxdata diff leaves alone

Command-line options (``--models``, ``--migrations-dir``) override these values.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigurationError, DeclarationError
from ..objects import Unmanaged

__all__ = ["DEFAULT_MIGRATIONS", "DEFAULT_MODELS", "ProjectSettings", "load_settings"]

DEFAULT_MODELS = "schema"
"""The models package used when pyproject.toml names none."""
DEFAULT_MIGRATIONS = "migrations"
"""The migrations folder used when pyproject.toml names none."""
_KEYS = ("ignore_schemas", "migrations", "models", "unmanaged")


@dataclass(frozen=True, slots=True)
class ProjectSettings:
    """Where the declarations and the migration files are.

    ``root`` is the folder holding pyproject.toml (or the working directory when there is none);
    a relative ``migrations`` folder is resolved against it.
    """

    root: Path
    models: str = DEFAULT_MODELS
    migrations: Path = Path(DEFAULT_MIGRATIONS)
    ignore_schemas: tuple[str, ...] = ()
    unmanaged: tuple[Unmanaged, ...] = ()

    @property
    def migrations_dir(self) -> Path:
        """The migrations folder as an absolute path."""
        return self.migrations if self.migrations.is_absolute() else self.root / self.migrations


def _find_pyproject(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def load_settings(
    start: Path | None = None,
    *,
    models: str | None = None,
    migrations: str | Path | None = None,
) -> ProjectSettings:
    """Settings from the nearest pyproject.toml at or above `start` (default: the working
    directory), with the explicit `models` / `migrations` arguments taking precedence.

    >>> load_settings(models="app.schema").models
    'app.schema'
    """
    start = (start or Path.cwd()).resolve()
    pyproject = _find_pyproject(start)
    table: dict[str, object] = {}
    root = start
    if pyproject is not None:
        root = pyproject.parent
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigurationError(f"cannot read {pyproject}: {exc}") from None
        found = data.get("tool", {}).get("nxdata", {})
        if not isinstance(found, dict):
            raise ConfigurationError(f"{pyproject}: [tool.nxdata] must be a table")
        unknown = sorted(set(found) - set(_KEYS))
        if unknown:
            # A misspelt key would otherwise be ignored and its default used in silence.
            close = difflib.get_close_matches(unknown[0], _KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigurationError(
                f"{pyproject}: unknown key {unknown[0]!r} in [tool.nxdata]{hint}; "
                f"the keys are: {', '.join(_KEYS)}"
            )
        table = found
    models_value = models or table.get("models", DEFAULT_MODELS)
    migrations_value = migrations or table.get("migrations", DEFAULT_MIGRATIONS)
    if not isinstance(models_value, str) or not models_value:
        raise ConfigurationError("[tool.nxdata] models must be a module name")
    if not isinstance(migrations_value, str | Path):
        raise ConfigurationError("[tool.nxdata] migrations must be a folder path")
    # An explicit folder is relative to where the command runs, like any path on a command line.
    migrations_path = Path(migrations_value)
    if migrations is not None and not migrations_path.is_absolute():
        migrations_path = Path.cwd() / migrations_path
    ignore = table.get("ignore_schemas", [])
    if not isinstance(ignore, list) or not all(isinstance(p, str) for p in ignore):
        raise ConfigurationError("[tool.nxdata] ignore_schemas must be a list of names or patterns")
    patterns = table.get("unmanaged", [])
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise ConfigurationError(
            "[tool.nxdata] unmanaged must be a list of 'kind pattern' strings, e.g. "
            "'index sale.idx_*'"
        )
    try:
        unmanaged = tuple(Unmanaged.parse(p) for p in patterns)
    except DeclarationError as exc:
        raise ConfigurationError(f"[tool.nxdata] {exc}") from None
    for item in unmanaged:
        if item.kind != "grant" and "." not in item.pattern:
            # It would match nothing: every name it is matched against has its schema.
            raise ConfigurationError(
                f"[tool.nxdata] unmanaged '{item.kind} {item.pattern}': name the schema "
                f"('{item.kind} sale.{item.pattern}', or '{item.kind} *.{item.pattern}' for "
                "every schema)"
            )
    return ProjectSettings(
        root=root,
        models=models_value,
        migrations=migrations_path,
        ignore_schemas=tuple(ignore),
        unmanaged=unmanaged,
    )
