"""Every web, console and CLI call of a service that records an audit event says who acted.

The services default `actor` to the system (sweeps, rules, workers act as the system); a route that
forgot to pass the signed-in key would record an administrator's freeze as done by "creditctl". This
reads the adapters' source and fails on any call of such a service without `actor=`."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import creditctl.services

ROOT = Path(__file__).resolve().parents[2]
CALLERS = ("adapters/web", "adapters/cli")


def _services_taking_an_actor() -> set[str]:
    names = set()
    for info in pkgutil.iter_modules(creditctl.services.__path__):
        module = importlib.import_module(f"creditctl.services.{info.name}")
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            public = not name.startswith("_")
            if public and fn.__module__ == module.__name__ and "actor" in inspect.signature(fn).parameters:
                names.add(name)
    return names


def _called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def test_the_services_that_record_an_actor_are_found() -> None:
    found = _services_taking_an_actor()
    assert {"freeze_account", "publish_rule_set", "decide_order", "create_api_key"} <= found


def test_every_adapter_call_of_such_a_service_passes_actor() -> None:
    services = _services_taking_an_actor()
    missing = []
    for folder in CALLERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not isinstance(node, ast.Call) or _called_name(node) not in services:
                    continue
                keywords = {k.arg for k in node.keywords}
                if "actor" not in keywords and None not in keywords:  # None: a **kwargs pass-through
                    missing.append(f"{path.relative_to(ROOT)}:{node.lineno} {_called_name(node)}()")
    assert not missing, "calls that would record the system as the actor:\n" + "\n".join(missing)
