"""A rule set compiled to two Python functions, evaluate and outcome, written out once per rule set.

Why: evaluating the default set was a loop over eight rules calling nested closures, a call per
condition node; as one function, every condition is inline code over local variables, each fact is
read from the facts once, and the trace and matches are built in place (bench/README.md, rules_bench.py).

Nothing a document holds becomes source text. The text names only local variables the compiler
makes up and the namespace's entries; catalogue fact names and validated param names are written as
string literals (checked again here), every other value (literals, rule ids, reasons, messages,
actions) is an entry of the namespace. The generated code does exactly what rules.predicates'
closures and the loop they replaced do, in the same order (tests/unit/rules/test_compiled_sameness.py).
A rule whose condition is larger than INLINE_NODES (or deeper than INLINE_DEPTH) calls its closure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from rules.facts import FACTS
from rules.operands import ARITHMETIC_OPS, CONSTANT, FACT, PAIR, PARAM, Source
from rules.outcome import BY_SEVERITY, Outcome
from rules.results import Evaluation, EvaluationBuilder, Match, MatchBuilder, RuleTrace, TraceBuilder
from rules.rule import Rule
from rules.shape import Compare, Group, Member, Missing, Not, Shape

Evaluate = Callable[[Mapping[str, Any], Mapping[str, Decimal] | None], Evaluation]
Decide = Callable[[Mapping[str, Any], Mapping[str, Decimal] | None], Outcome]

INLINE_NODES = 32
INLINE_DEPTH = 12
_PARAM_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_OPERATORS = {"eq": "==", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


@dataclass(frozen=True, slots=True)
class Plan:
    """What the compiled functions need beyond the rules: the set's own params, the params any rule or
    message names (`named`, in the order the loop they replace read them), and each rule's trace params
    when nothing is overridden (`fixed`) or, for a disabled rule, its whole constant trace."""

    rules: tuple[Rule, ...]
    own: dict[str, Decimal]
    named: tuple[str, ...]
    fixed: tuple[Mapping[str, Decimal], ...]
    disabled: tuple[RuleTrace | None, ...]


def compile_rule_set(plan: Plan) -> tuple[Evaluate, Decide]:
    """The evaluate(facts, params) and outcome(facts, params) functions of a RuleSet."""
    writer = _Writer(plan)
    source = writer.module()
    namespace = writer.namespace
    exec(compile(source, f"<rule set compiled: {len(plan.rules)} rules>", "exec"), namespace)
    return namespace["evaluate"], namespace["outcome"]


def source_of(plan: Plan) -> str:
    """The generated source, for reading and for tests."""
    return _Writer(plan).module()


def _size(shape: Shape, depth: int = 1) -> tuple[int, int]:
    """(nodes, depth) of a condition shape."""
    if isinstance(shape, Not):
        nodes, deepest = _size(shape.inner, depth + 1)
        return nodes + 1, deepest
    if isinstance(shape, Group):
        sizes = [_size(member, depth + 1) for member in shape.members]
        return 1 + sum(n for n, _ in sizes), max(d for _, d in sizes)
    return 1, depth


class _Writer:
    """Writes the module text; `namespace` holds every value the text refers to by name."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.namespace: dict[str, Any] = {
            "__builtins__": {"dict": dict, "tuple": tuple, "type": type, "KeyError": KeyError},
            "OWN": plan.own,
            "BY_SEVERITY": BY_SEVERITY,
            "new": object.__new__,
            "TraceBuilder": TraceBuilder,
            "RuleTrace": RuleTrace,
            "MatchBuilder": MatchBuilder,
            "Match": Match,
            "EvaluationBuilder": EvaluationBuilder,
            "Evaluation": Evaluation,
        }
        self.facts: dict[str, str] = {}  # fact name -> local variable
        self.params = {name: f"p{i}" for i, name in enumerate(plan.named)}
        self.own = {name: self.bind(plan.own[name], "OWN_") for name in plan.named}
        self.temps = 0
        self.lines: list[str] = []

    # -- names ---------------------------------------------------------------------------------

    def bind(self, value: object, prefix: str) -> str:
        name = f"{prefix}{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def temp(self) -> str:
        self.temps += 1
        return f"t{self.temps}"

    def fact(self, name: str) -> str:
        if name not in FACTS:  # validated already; never write anything else into the source
            raise ValueError(f"not a catalogue fact: {name!r}")
        if name not in self.facts:
            self.facts[name] = f"f{len(self.facts)}"
        return self.facts[name]

    @staticmethod
    def literal(name: str) -> str:
        if name not in FACTS and not _PARAM_NAME.fullmatch(name):
            raise ValueError(f"not a fact or param name: {name!r}")
        return repr(name)

    def line(self, indent: int, text: str) -> None:
        self.lines.append("    " * indent + text)

    # -- the module ----------------------------------------------------------------------------

    def module(self) -> str:
        body = self.lines = []
        self.evaluate_body()
        evaluate = self.prologue() + body
        body = self.lines = []
        self.outcome_body()
        outcome = self.prologue() + body
        return "\n".join(
            [
                "def evaluate(facts, params=None):",
                *evaluate,
                "",
                "",
                "def outcome(facts, params=None):",
                *outcome,
                "",
            ]
        )

    def prologue(self) -> list[str]:
        """Facts as a dict, which params apply (RuleSet._with before), and every fact read once."""
        out = ["    seen = facts if type(facts) is dict else dict(facts)", "    get = seen.get"]
        named = self.plan.named
        if not named:
            out += ["    merged = OWN", "    over = False"]
        else:
            picks = " & ".join(f"(params[{self.literal(name)}] is {self.own[name]})" for name in named)
            out += [
                "    if params:",
                "        try:",
                f"            over = not ({picks})",
                "        except KeyError:",
                "            over = True",
                "    else:",
                "        over = False",
                "    if over:",
                "        merged = {**OWN, **params}",
                *(f"        {local} = merged[{self.literal(name)}]" for name, local in self.params.items()),
                "    else:",
                "        merged = OWN",
                *(f"        {local} = {self.own[name]}" for name, local in self.params.items()),
            ]
        out += [f"    {local} = get({self.literal(name)})" for name, local in self.facts.items()]
        return out

    def evaluate_body(self) -> None:
        self.line(1, "worst = 0")
        self.line(1, "matches = []")
        traces = []
        for index, rule in enumerate(self.plan.rules):
            disabled = self.plan.disabled[index]
            if disabled is not None:
                traces.append(self.bind(disabled, "DISABLED"))
                continue
            for name in rule.facts:
                self.fact(name)
            matched = f"m{index}"
            self.line(1, f"{matched} = {self.condition(rule, 1)}")
            self.line(1, f"if {matched}:")
            self.match(rule, 2)
            severity = rule.outcome.severity
            if severity:
                self.line(2, f"if worst < {severity}:")
                self.line(3, f"worst = {severity}")
            trace = f"r{index}"
            traces.append(trace)
            self.trace(rule, index, matched, trace)
        self.line(1, "evaluation = new(EvaluationBuilder)")
        self.line(1, "evaluation.outcome = BY_SEVERITY[worst]")
        self.line(1, "evaluation.matches = tuple(matches)")
        self.line(1, f"evaluation.trace = ({''.join(f'{t}, ' for t in traces)})")
        self.line(1, "evaluation.__class__ = Evaluation")
        self.line(1, "return evaluation")

    def outcome_body(self) -> None:
        """A rule no more severe than the worst match so far is not tested (RuleSet.outcome)."""
        self.line(1, "worst = 0")
        for index, rule in enumerate(self.plan.rules):
            severity = rule.outcome.severity
            if self.plan.disabled[index] is not None or not severity:
                continue
            self.line(1, f"if worst < {severity}:")
            self.line(2, f"if {self.condition(rule, 2)}:")
            self.line(3, f"worst = {severity}")
        self.line(1, "return BY_SEVERITY[worst]")

    def match(self, rule: Rule, indent: int) -> None:
        fields = {
            "rule_id": self.bind(rule.id, "RULE"),
            "outcome": self.bind(rule.outcome, "OUTCOME"),
            "reason": self.bind(rule.reason, "REASON"),
            "actions": self.bind(rule.actions, "ACTIONS"),
        }
        if rule.message_slots:
            values = "".join(f"{self.slot(name, is_fact)}, " for name, is_fact in rule.message_slots)
            fields |= {"_message": "None", "_show": self.bind(rule.show, "SHOW"), "_values": f"({values})"}
        else:
            fields |= {"_message": self.bind(rule.message, "MESSAGE"), "_show": "None", "_values": "()"}
        self.line(indent, "match = new(MatchBuilder)")
        for name, value in fields.items():
            self.line(indent, f"match.{name} = {value}")
        self.line(indent, "match.__class__ = Match")
        self.line(indent, "matches.append(match)")

    def slot(self, name: str, is_fact: bool) -> str:
        if not is_fact:
            return self.params[name]
        return self.facts[name] if name in self.facts else f"get({self.literal(name)})"

    def trace(self, rule: Rule, index: int, matched: str, trace: str) -> None:
        reads = ", ".join(f"{self.literal(name)}: {self.facts[name]}" for name in rule.facts)
        fixed = self.bind(self.plan.fixed[index], "FIXED")
        if rule.params and self.plan.named:
            read = ", ".join(f"{self.literal(name)}: {self.params[name]}" for name in rule.params)
            params = f"{{{read}}} if over else {fixed}"
        else:
            params = fixed
        self.line(1, f"{trace} = new(TraceBuilder)")
        self.line(1, f"{trace}.rule_id = {self.bind(rule.id, 'RULE')}")
        self.line(1, f"{trace}.matched = {matched}")
        self.line(1, f"{trace}.enabled = True")
        self.line(1, f"{trace}.reads = {{{reads}}}")
        self.line(1, f"{trace}.params = {params}")
        self.line(1, f"{trace}.__class__ = RuleTrace")

    # -- conditions ----------------------------------------------------------------------------

    def condition(self, rule: Rule, indent: int) -> str:
        """An expression for the rule's test (statements before it written at `indent`)."""
        nodes, depth = _size(rule.shape)
        if nodes > INLINE_NODES or depth > INLINE_DEPTH:
            for name in rule.facts:
                self.fact(name)
            return f"{self.bind(rule.test, 'TEST')}(seen, merged)"
        return self.shape(rule.shape, indent)

    def shape(self, shape: Shape, indent: int) -> str:
        if isinstance(shape, Compare):
            return self.compare(shape, indent)
        if isinstance(shape, Member):
            fact = self.fact(shape.fact)
            test = "not in" if shape.negate else "in"
            return f"(None if {fact} is None else {fact} {test} {self.bind(shape.values, 'VALUES')})"
        if isinstance(shape, Missing):
            return f"({self.fact(shape.fact)} is {'not ' if shape.negate else ''}None)"
        if isinstance(shape, Not):
            inner = self.held(self.shape(shape.inner, indent), indent)
            return f"(None if {inner} is None else not {inner})"
        return self.group(shape, indent)

    def held(self, expression: str, indent: int) -> str:
        """A local holding the expression's value (the expression itself if it is one)."""
        if expression.isidentifier():
            return expression
        local = self.temp()
        self.line(indent, f"{local} = {expression}")
        return local

    def compare(self, shape: Compare, indent: int) -> str:
        fact, op = self.fact(shape.fact), _OPERATORS[shape.op]
        kind, what = shape.source
        if kind == PAIR:
            name, first, second = what
            a, b = self.operand(first), self.operand(second)
            unknown = " or ".join(
                f"{v} is None" for v, (k, _) in ((fact, (FACT, 0)), (a, first), (b, second)) if k != CONSTANT
            )
            apply = self.bind(ARITHMETIC_OPS[name], "ARITHMETIC")
            return f"(None if {unknown} else {fact} {op} {apply}({a}, {b}))"
        if kind in (FACT, PARAM, CONSTANT):
            other = self.operand(shape.source)
            unknown = f"{fact} is None" + (f" or {other} is None" if kind == FACT else "")
            return f"(None if {unknown} else {fact} {op} {other})"
        value = self.temp()  # CALL: arithmetic beyond a pair, its closure called only on a known fact
        call = f"{self.bind(what, 'VALUE')}(seen, merged)"
        self.line(indent, f"{value} = None if {fact} is None else {call}")
        return f"(None if {value} is None else {fact} {op} {value})"

    def operand(self, source: Source) -> str:
        kind, what = source
        if kind == FACT:
            return self.fact(what)
        if kind == PARAM:
            return self.params[what]
        if kind == CONSTANT:
            return self.bind(what, "C")
        raise ValueError(f"not a simple operand: {source!r}")

    def group(self, shape: Group, indent: int) -> str:
        """all/any: stops at the first False (all) or True (any); else unknown if any member was."""
        members = shape.members
        if len(members) == 1:
            return self.shape(members[0], indent)
        stop, through = ("True", "False") if shape.any_ else ("False", "True")
        result = self.temp()
        if len(members) == 2:
            a = self.held(self.shape(members[0], indent), indent)
            self.line(indent, f"if {a} is {stop}:")
            self.line(indent + 1, f"{result} = {stop}")
            self.line(indent, "else:")
            b = self.held(self.shape(members[1], indent + 1), indent + 1)
            either = f"None if {a} is None or {b} is None else {through}"
            self.line(indent + 1, f"{result} = {stop} if {b} is {stop} else ({either})")
            return result
        stopped, unknown = self.temp(), self.temp()
        self.line(indent, f"{stopped} = {unknown} = False")
        for position, member in enumerate(members):
            inner = indent if position == 0 else indent + 1
            if position:
                self.line(indent, f"if not {stopped}:")
            value = self.held(self.shape(member, inner), inner)
            self.line(inner, f"if {value} is {stop}:")
            self.line(inner + 1, f"{stopped} = True")
            self.line(inner, f"elif {value} is None:")
            self.line(inner + 1, f"{unknown} = True")
        self.line(indent, f"{result} = {stop} if {stopped} else (None if {unknown} else {through})")
        return result
