"""Finding the declarations: import the models package and every submodule, collect the `Schema`
objects they define and the seed processes they register."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from ..errors import ConfigurationError, DeclarationError
from ..table import Schema
from .journal import JOURNAL_SCHEMA
from .processes import Process, registered_processes

__all__ = ["Models", "load_models"]


@dataclass(frozen=True, slots=True)
class Models:
    """What a models package declares: schemas by name and processes in name order."""

    module: str
    schemas: dict[str, Schema]
    processes: tuple[Process, ...]

    def select(self, names: list[str] | None) -> list[Schema]:
        """The named schemas (all when `names` is None), in name order.

        `ConfigurationError` for a name the models do not declare.
        """
        if names is None:
            return [self.schemas[n] for n in sorted(self.schemas)]
        out = []
        for name in names:
            if name not in self.schemas:
                declared = ", ".join(sorted(self.schemas)) or "none"
                raise ConfigurationError(
                    f"schema {name!r} is not declared in {self.module} (declared: {declared})"
                )
            out.append(self.schemas[name])
        return out


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise ConfigurationError(
                f"cannot import the models module {name!r}: no module named {exc.name!r} "
                "(set --models or [tool.nxdata] models in pyproject.toml)"
            ) from None
        raise ConfigurationError(f"cannot import the models module {name!r}: {exc}") from None
    except DeclarationError:
        raise
    except Exception as exc:  # the user's module failed to import: say where, not a traceback
        raise ConfigurationError(
            f"importing the models module {name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc


def _modules(root: ModuleType) -> list[ModuleType]:
    modules = [root]
    paths = getattr(root, "__path__", None)
    if paths is not None:
        # Sorted so the import order (and so registration order) never depends on the filesystem.
        found = sorted(
            pkgutil.walk_packages(paths, prefix=root.__name__ + "."), key=lambda m: m.name
        )
        for info in found:
            modules.append(_import(info.name))
    return modules


def load_models(module: str, *, path: Path | None = None) -> Models:
    """Import `module` and its submodules; collect their `Schema` objects and processes.

    `path` (e.g. the project root) is put on ``sys.path`` first so a top-level package there is
    importable from a console script. `ConfigurationError` when the module cannot be imported.

    >>> models = load_models("schema")
    >>> sorted(models.schemas)
    ['billing', 'licensing']
    """
    if path is not None and str(path) not in sys.path:
        sys.path.insert(0, str(path))
    root = _import(module)
    schemas: dict[str, Schema] = {}
    names: set[str] = set()
    for mod in _modules(root):
        names.add(mod.__name__)
        for value in list(vars(mod).values()):
            if not isinstance(value, Schema):
                continue
            other = schemas.get(value.name)
            if other is not None and other is not value:
                raise ConfigurationError(
                    f"schema {value.name!r} is declared by two Schema objects in {module}; "
                    "declare it once and import it where needed"
                )
            schemas[value.name] = value
    if JOURNAL_SCHEMA in schemas:
        raise ConfigurationError(f"schema name {JOURNAL_SCHEMA!r} is reserved for nxdata's journal")
    processes = tuple(p for p in registered_processes() if p.module in names)
    for proc in processes:
        # `migrate --schema` picks processes by schema: one of an undeclared schema would only
        # ever run with --all, which is almost always a typo in its name.
        if proc.schema not in schemas:
            origin = (
                "the part of its name before the first '-'"
                if proc.schema == proc.name.split("-", 1)[0]
                else "given with schema="
            )
            declared = ", ".join(sorted(schemas)) or "none"
            raise DeclarationError(
                f"process {proc.name!r} belongs to schema {proc.schema!r} ({origin}), which "
                f"{module} does not declare (declared: {declared}): rename it or pass "
                "schema= to @process"
            )
    return Models(module, schemas, processes)
