"""What compiling one condition needs to know and remembers: declared params, problems, names read."""

from __future__ import annotations

from dataclasses import dataclass, field

from rules.facts import FACTS, FactSpec
from rules.params import DeclaredParams
from rules.problems import Problems

# Condition and value objects on one path: deeper trees are a mistake, and recursion has limits.
MAX_DEPTH = 32
# Condition and value objects in one rule (its `when`, or auto_unfreeze): larger trees are a mistake too,
# and every node costs on every evaluation.
MAX_NODES = 500


@dataclass(slots=True)
class Scope:
    """Per-condition compile state; `facts_read`/`params_read` keep first-use order for the trace."""

    problems: Problems
    params: DeclaredParams
    facts_read: dict[str, None] = field(default_factory=dict)
    params_read: dict[str, None] = field(default_factory=dict)
    nodes: int = 0

    def fresh(self) -> Scope:
        """Same document, no names read yet: one per rule."""
        return Scope(self.problems, self.params)

    def too_deep(self, pointer: str, depth: int) -> bool:
        """Report (once per branch) a node nested deeper than MAX_DEPTH."""
        if depth <= MAX_DEPTH:
            return False
        self.problems.add(pointer, f"nested too deeply (more than {MAX_DEPTH} levels)")
        return True

    def too_large(self, pointer: str) -> bool:
        """Count one node; report (once per rule) the node past MAX_NODES."""
        self.nodes += 1
        if self.nodes != MAX_NODES + 1:
            return self.nodes > MAX_NODES
        self.problems.add(pointer, f"condition too large (more than {MAX_NODES} nodes in one rule)")
        return True

    def fact(self, name: object, pointer: str) -> FactSpec | None:
        """Look a fact up in the catalogue, reporting an unknown one."""
        spec = FACTS.get(name) if isinstance(name, str) else None
        if spec is None:
            self.problems.add(pointer, f"unknown fact {name!r}; see the fact catalogue")
            return None
        self.facts_read[spec.name] = None
        return spec

    def param(self, name: object, pointer: str) -> str | None:
        """Look a param up among the document's params, reporting an undeclared one."""
        if not isinstance(name, str) or name not in self.params.values:
            self.problems.add(pointer, f"unknown param {name!r}; declare it in the rule set's params")
            return None
        self.params_read[name] = None
        return name
