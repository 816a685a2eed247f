"""The rule language: rules are JSON data, validated with pointers; each set compiled to one function.

Pure: standard library only, no I/O, nothing from creditctl or adapters.
"""

from rules.codec import dumps_document, loads_document
from rules.defaults import default_rule_set_document
from rules.diff import diff_documents
from rules.facts import FACTS, FactSpec, FactType
from rules.outcome import Outcome
from rules.params import KNOWN_PARAMS, PARAM_DEFAULTS, ParamSpec
from rules.parser import parse_rule_set
from rules.problems import RuleProblem, RuleSetInvalid
from rules.results import Evaluation, Match, RuleTrace
from rules.rule import Rule
from rules.rule_set import RuleSet

__all__ = [
    "FACTS",
    "KNOWN_PARAMS",
    "PARAM_DEFAULTS",
    "Evaluation",
    "FactSpec",
    "FactType",
    "Match",
    "Outcome",
    "ParamSpec",
    "Rule",
    "RuleProblem",
    "RuleSet",
    "RuleSetInvalid",
    "RuleTrace",
    "default_rule_set_document",
    "diff_documents",
    "dumps_document",
    "loads_document",
    "parse_rule_set",
]
