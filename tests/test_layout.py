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


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def dependencies(module: str) -> set[str]:
    """The package's modules ``module`` imports. ``from a import b`` depends
    on ``a.b`` when that is a module, else on ``a``."""
    found = set()
    for name in imported_modules(MODULES[module]):
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)
    # imported_modules lists "a" beside "a.b"; the package counts only when
    # something not a submodule was taken from it.
    for name in list(found):
        if any(other.startswith(name + ".") for other in found) and not _takes_names(module, name):
            found.discard(name)
    return found


def _takes_names(module: str, package: str) -> bool:
    """Whether ``module`` imports from ``package`` a name that is no submodule."""
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module == package
            and not node.level
            and any(f"{package}.{alias.name}" not in MODULES for alias in node.names)
        ):
            return True
        if isinstance(node, ast.Import) and any(a.name == package for a in node.names):
            return True
    return False


def cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    graph = {module: dependencies(module) for module in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in MODULES:
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_itself_through_others() -> None:
    assert cycles() == []


def test_observability_reads_the_worker_without_importing_it() -> None:
    reaching = [
        f"{module} imports {target}"
        for module in MODULES
        if reaches(module, "taskqueue.observability")
        for target in dependencies(module)
        if reaches(target, "taskqueue.worker")
    ]
    assert reaching == []


def test_modules_stay_small_and_the_client_a_facade() -> None:
    lines = {module: len(path.read_text().splitlines()) for module, path in MODULES.items()}
    assert (
        lines["taskqueue.client"] <= 485
    )  # 450, plus wait(), result() and expiry/callback arguments
    assert {module: count for module, count in lines.items() if count > 600} == {}
