"""Who may create credit: every act that moves money or credit, the roles and scope it needs, and whether a
second owner must agree. Segregation of duties, as a credit department's auditors require (SAP FSCM and
Dynamics 365 separate who asks for credit from who grants it): nobody raises what a customer may spend
alone, and a key limited to a customer never raises that customer's credit by itself.

This table is the one place the rules live: the web routes take their role gate from it
(`adapters.web.auth.requires_act`), the services call `authorize` with the facts only they know (is this a
raise? whose freeze is it? does the release overdraw?), and the README's table is checked against it.
The operator at the command line (`Operator`) runs on the database's host and is recorded as `cli:<user>`:
it has global authority, as whoever holds the database's credentials has anyway."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from creditctl.domain.api_key import ApiKey, Role, same_owner
from creditctl.domain.errors import Forbidden


class Scope(StrEnum):
    ANY = "any"  # a key limited to some customers may do it for those customers
    GLOBAL = "global"  # only a key not limited to customers (or the operator)


class Act(StrEnum):
    DECIDE_ORDER = "decide_order"
    END_HOLD = "end_hold"
    POST_PAYMENTS = "post_payments"
    LOWER_BASE_LIMIT = "lower_base_limit"
    RAISE_BASE_LIMIT = "raise_base_limit"
    REQUEST_TEMPORARY_LIMIT = "request_temporary_limit"
    DECIDE_TEMPORARY_LIMIT = "decide_temporary_limit"
    SET_ACCOUNT_PARAMS = "set_account_params"
    CHANGE_RULE_SETS = "change_rule_sets"
    FREEZE = "freeze"
    LIFT_OWN_FREEZE = "lift_own_freeze"
    LIFT_OTHERS_FREEZE = "lift_others_freeze"
    RELEASE_DEFERRED = "release_deferred"
    RELEASE_OVERDRAFT = "release_overdraft"
    REJECT_DEFERRED = "reject_deferred"


@dataclass(frozen=True, slots=True)
class Rule:
    what: str
    roles: tuple[Role, ...]
    scope: Scope
    second_owner: bool  # another owner than the one who asked must approve
    note: str = ""


AUTHORITY: dict[Act, Rule] = {
    Act.DECIDE_ORDER: Rule("decide an order (holds what it approves)", (Role.ORDERS,), Scope.ANY, False),
    Act.END_HOLD: Rule("settle or release an order's hold", (Role.ORDERS,), Scope.ANY, False),
    Act.POST_PAYMENTS: Rule(
        "post payment records",
        (Role.FINANCE,),
        Scope.GLOBAL,
        False,
        "finance's facts: never a key limited to the customer they describe",
    ),
    Act.LOWER_BASE_LIMIT: Rule("lower a base credit limit", (Role.ADMIN,), Scope.ANY, False),
    Act.RAISE_BASE_LIMIT: Rule(
        "raise a base credit limit",
        (Role.ADMIN,),
        Scope.GLOBAL,
        False,
        "a limited key asks for a temporary limit instead (second owner)",
    ),
    Act.REQUEST_TEMPORARY_LIMIT: Rule("ask for a temporary credit limit", (Role.ADMIN,), Scope.ANY, False),
    Act.DECIDE_TEMPORARY_LIMIT: Rule(
        "approve or reject a temporary credit limit",
        (Role.ADMIN,),
        Scope.ANY,
        True,
        "another owner than the requester's; approving: the amount within the approver's approval limit; "
        "at most 366 days",
    ),
    Act.SET_ACCOUNT_PARAMS: Rule(
        "set an account's parameters or pin a rule set", (Role.ADMIN,), Scope.GLOBAL, False
    ),
    Act.CHANGE_RULE_SETS: Rule(
        "edit, publish or roll back a rule set; assign one to a customer", (Role.ADMIN,), Scope.GLOBAL, False
    ),
    Act.FREEZE: Rule("freeze an account", (Role.ADMIN,), Scope.ANY, False),
    Act.LIFT_OWN_FREEZE: Rule("lift a freeze the same owner set", (Role.ADMIN,), Scope.ANY, False),
    Act.LIFT_OTHERS_FREEZE: Rule(
        "lift a freeze another owner or the rules set", (Role.ADMIN,), Scope.GLOBAL, False
    ),
    Act.RELEASE_DEFERRED: Rule(
        "release a deferred order within available + credit limit",
        (Role.ADMIN,),
        Scope.ANY,
        False,
        "amount within the key's approval limit",
    ),
    Act.RELEASE_OVERDRAFT: Rule(
        "release a deferred order beyond available + credit limit",
        (Role.ADMIN,),
        Scope.GLOBAL,
        False,
        "with override: true; approval limit covers the amount and the overdraft",
    ),
    Act.REJECT_DEFERRED: Rule("reject a deferred order", (Role.ADMIN,), Scope.ANY, False),
}


@dataclass(frozen=True, slots=True)
class Operator:
    """The operator at the command line (`cli:<user>`): global authority, one owner."""

    user: str

    @property
    def owner(self) -> str:
        return f"cli:{self.user}"


Principal = ApiKey | Operator


class NotAuthorised(Forbidden):
    """The act needs a role, a scope or an approval authority the acting key does not have."""

    code = "auth.authority"

    def __init__(self, act: Act, why: str) -> None:
        super().__init__(f"{AUTHORITY[act].what}: {why}", errors={"authority": [act.value]})
        self.act = act


def roles_for(act: Act) -> tuple[Role, ...]:
    return AUTHORITY[act].roles


def authorize(act: Act, who: Principal) -> None:
    """Raise NotAuthorised unless `who` may do `act` (role and scope; a second owner is checked where the
    second owner acts: credit limit requests compare owners with `same_owner`)."""
    if isinstance(who, Operator):
        return
    rule = AUTHORITY[act]
    if who.role not in rule.roles:
        raise NotAuthorised(act, f"needs a key with role {' or '.join(r.value for r in rule.roles)}")
    if rule.scope is Scope.GLOBAL and not who.is_global:
        hint = f" ({rule.note})" if rule.note else ""
        raise NotAuthorised(act, f"needs a key not limited to customers{hint}")


def require_approval_authority(act: Act, who: Principal, amount: Decimal) -> None:
    """Granting credit (approving a temporary limit) is within the approver's approval limit, as a
    release is: a key that may not release a 60,000.00 order does not grant a larger line."""
    if isinstance(who, Operator):
        return
    limit = who.approval_limit
    if limit is None or amount > limit:
        raise NotAuthorised(
            act,
            f"{amount} is beyond the key's approval authority ({'none' if limit is None else limit}); "
            "a key whose approval limit covers it must approve",
        )


def owner_of(who: Principal) -> str:
    return who.owner


def scope_of(who: Principal) -> frozenset[str] | None:
    """The customers `who` may see (None: all)."""
    return None if isinstance(who, Operator) else who.customers


def who_name(who: Principal) -> str:
    """The name a change is recorded under: the key's name, or cli:<user>."""
    return who.owner if isinstance(who, Operator) else who.name


def base_limit_act(before: Decimal, after: Decimal, *, pins_rule_value: bool = False) -> Act:
    """Raising an effective base limit creates credit; lowering it never does. Setting an explicit base on
    an account that followed the rule set's base_credit_limit, even at the same figure, is a raise too: it
    cuts the account off from the rule set, so a later lowering by head office no longer reaches it."""
    return (
        Act.RAISE_BASE_LIMIT
        if after > before or (pins_rule_value and after == before)
        else (Act.LOWER_BASE_LIMIT)
    )


def freezer(who: Principal) -> str:
    """How a manual freeze records who set it: `admin:<owner>`, so any key of that owner may lift it."""
    return f"admin:{owner_of(who)}"


def froze_it(frozen_by: str | None, who: Principal) -> bool:
    """Whether `who`'s owner set the account's manual freeze (`admin:<owner>`, owners compared as people)."""
    return (
        frozen_by is not None
        and frozen_by.startswith("admin:")
        and same_owner(frozen_by.removeprefix("admin:"), owner_of(who))
    )


def release_act(
    who: Principal, *, amount: Decimal, headroom_after: Decimal, override: bool
) -> tuple[Act, Decimal]:
    """The act a release is and the overdraft it makes: headroom_after is available + credit limit once
    the order is held; below zero the release overdraws by that much, which needs global authority, an
    explicit override and an approval limit that covers both the amount and the overdraft."""
    overdraft = -headroom_after if headroom_after < 0 else Decimal("0.00")
    act = Act.RELEASE_OVERDRAFT if overdraft > 0 else Act.RELEASE_DEFERRED
    authorize(act, who)
    if isinstance(who, Operator):
        return act, overdraft
    limit = who.approval_limit
    if overdraft > 0:
        if not override:
            raise NotAuthorised(
                act,
                f"it would take available + credit limit to {headroom_after} (an overdraft of {overdraft}); "
                "send override: true to release it anyway, with authority that covers the overdraft",
            )
        if limit is None or overdraft > limit:
            raise NotAuthorised(
                act,
                f"the overdraft of {overdraft} is beyond the key's approval authority "
                f"({'none' if limit is None else limit})",
            )
    return act, overdraft
