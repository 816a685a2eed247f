"""The operator at the command line as a principal of the authority table (creditctl/domain/authority.py)."""

from __future__ import annotations

from adapters.cli.audit import operator
from creditctl.domain.authority import Operator


def operator_principal() -> Operator:
    """The same person the audit trail records as cli:<user>."""
    return Operator(user=operator().name.removeprefix("cli:"))
