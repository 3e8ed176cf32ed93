"""The package's layout rules, checked on the sources (imports inside
functions and TYPE_CHECKING blocks count)."""

from __future__ import annotations

import ast
from pathlib import Path

import taskqueue

PACKAGE = Path(taskqueue.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it, as absolute names."""
    package = "taskqueue." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    if path.name == "__init__.py":
        package = package.removesuffix(".__init__")
    else:
        package = package.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package
                for _ in range(node.level - 1):
                    parent = parent.rpartition(".")[0]
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def reaches(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_api_and_web_do_not_import_each_other() -> None:
    crossings = [
        f"{path.relative_to(PACKAGE.parent)} imports {module}"
        for surface, other in (("api", "taskqueue.web"), ("web", "taskqueue.api"))
        for path in sorted((PACKAGE / surface).rglob("*.py"))
        for module in sorted(imported_modules(path))
        if reaches(module, other)
    ]
    assert crossings == []
