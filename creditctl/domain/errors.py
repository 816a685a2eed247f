"""The error hierarchy: stable dotted codes plus the data a caller needs. HTTP lives only at the web edge."""

from __future__ import annotations

from decimal import Decimal


class CreditctlError(Exception):
    """Root of every error the application raises on purpose."""

    code = "error"

    def __init__(
        self, message: str, *, field: str | None = None, errors: dict[str, list[str]] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.errors = errors if errors is not None else ({field: [message]} if field else {})


class NotFound(CreditctlError):
    """Something asked for does not exist, or the caller may not know it exists."""

    code = "not_found"


class UnknownCustomer(NotFound):
    code = "not_found.customer"

    def __init__(self, customer_code: str) -> None:
        super().__init__(f"unknown customer {customer_code!r}", field="customer_code")
        self.customer_code = customer_code


class UnknownAccount(NotFound):
    code = "not_found.account"

    def __init__(self, customer_code: str, sale_group_code: str) -> None:
        super().__init__(
            f"customer {customer_code!r} has no payer account in sales group {sale_group_code!r}",
            field="sale_group_code",
        )
        self.customer_code = customer_code
        self.sale_group_code = sale_group_code


class UnknownOrder(NotFound):
    code = "not_found.order"

    def __init__(self, order_id: str) -> None:
        super().__init__(f"no decision for order {order_id!r}", field="order_id")
        self.order_id = order_id


class InvalidRequest(CreditctlError):
    """Input that is well-formed but not acceptable (an unknown sales group, a bad parameter)."""

    code = "invalid"


class Conflict(CreditctlError):
    """The request contradicts the current state (idempotency conflict, hold already ended)."""

    code = "conflict"


class OrderIdReused(Conflict):
    code = "conflict.order_id"

    def __init__(self, order_id: str) -> None:
        super().__init__(
            f"order {order_id!r} was already decided with a different body; use a new order id",
            field="order_id",
        )
        self.order_id = order_id


class AmbiguousOrder(Conflict):
    """Order ids are unique per customer; a key that sees several customers must say which one."""

    code = "conflict.order_id_ambiguous"

    def __init__(self, order_id: str) -> None:
        super().__init__(
            f"order id {order_id!r} is used by more than one customer you may see; "
            "name the customer with ?customer_code=",
            field="customer_code",
        )
        self.order_id = order_id


class HoldNotOpen(Conflict):
    code = "conflict.hold_state"

    def __init__(self, order_id: str, state: str) -> None:
        super().__init__(f"order {order_id!r} has no open hold to end (it is {state})", field="order_id")
        self.order_id = order_id
        self.state = state


class OverSettlement(Conflict):
    """A settle for more than is still held (or for nothing): refused, naming what is left."""

    code = "conflict.over_settlement"

    def __init__(self, order_id: str, *, requested: Decimal, remaining: Decimal) -> None:
        super().__init__(
            f"order {order_id!r} cannot settle {requested}: {remaining} is left on its hold",
            errors={"amount": [f"at most {remaining}"], "remaining": [str(remaining)]},
        )
        self.order_id = order_id
        self.requested = requested
        self.remaining = remaining


class SettlementIdReused(Conflict):
    code = "conflict.settlement_id"

    def __init__(self, order_id: str, settlement_id: str, amount: Decimal) -> None:
        super().__init__(
            f"settlement {settlement_id!r} of order {order_id!r} already settled {amount}; "
            "a retry must send the same amount, a new part a new settlement_id",
            errors={"settlement_id": [f"already used for {amount}"]},
        )
        self.order_id = order_id
        self.settlement_id = settlement_id
        self.amount = amount


class AlreadyFrozen(Conflict):
    """A freeze with another reason on an account an administrator already froze: the first freeze
    stands and is named, rather than being silently kept or overwritten."""

    code = "conflict.already_frozen"

    def __init__(self, customer_code: str, sale_group_code: str, *, reason: str, by: str, since: str) -> None:
        super().__init__(
            f"account {customer_code}/{sale_group_code} is already frozen since {since} by {by}: {reason!r}; "
            "unfreeze it first to freeze it for another reason",
            errors={"frozen_reason": [reason], "frozen_by": [by], "frozen_at": [since]},
        )
        self.frozen_reason = reason
        self.frozen_by = by
        self.frozen_at = since


class UpstreamUnavailable(CreditctlError):
    """The balance source could not be asked and nothing stored can stand in for it."""

    code = "upstream.unavailable"


class ReadReplicaNotReady(CreditctlError):
    """Reports read from a replica that cannot yet say up to when its data are complete (it has replayed
    no commit since it started): answering would claim a freshness nobody knows."""

    code = "unavailable.read_replica"


class Unauthenticated(CreditctlError):
    code = "auth.unauthenticated"


class RevokedKey(Unauthenticated):
    """A key that existed and was revoked: said so, with when, so that its holder knows to get a new one
    rather than suspect a typing mistake (an unknown key stays a plain Unauthenticated)."""

    code = "auth.revoked_key"

    def __init__(self, name: str, key_id: int, revoked_at: str) -> None:
        super().__init__(
            f"the API key {name!r} (id {key_id}) was revoked at {revoked_at}; use a current key "
            "(creditctl keys create makes one; creditctl demo --new-keys prints new demo keys)",
            errors={"api_key": [f"revoked at {revoked_at}"]},
        )
        self.revoked_at = revoked_at


class Forbidden(CreditctlError):
    code = "auth.forbidden"


class UnknownLimitRequest(NotFound):
    code = "not_found.credit_limit_request"

    def __init__(self, request_id: str) -> None:
        super().__init__(f"no credit limit request {request_id!r}", field="request_id")
        self.request_id = request_id


class LimitRequestNotPending(Conflict):
    code = "conflict.credit_limit_request_state"

    def __init__(self, request_id: str, status: str) -> None:
        super().__init__(
            f"credit limit request {request_id!r} is {status}, not pending; it cannot be decided again",
            field="request_id",
        )
        self.status = status


class OwnRequest(Forbidden):
    """Four eyes: whoever asked for a temporary limit may not approve or reject it."""

    code = "auth.four_eyes"

    def __init__(self, request_id: str, owner: str) -> None:
        super().__init__(
            f"credit limit request {request_id!r} was made by {owner!r}, who holds this API key; "
            "another person must approve or reject it (four eyes compares owners, not keys)",
            field="request_id",
        )


class UnknownRuleSet(NotFound):
    code = "not_found.rule_set"

    def __init__(self, what: str) -> None:
        super().__init__(f"no rule set {what}", field="rule_set")


class RuleSetRefused(InvalidRequest):
    """A rule document with problems: `errors` maps each JSON pointer (in the document) to messages."""

    code = "invalid.rule_set"

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        errors: dict[str, list[str]] = {}
        for pointer, message in problems:
            errors.setdefault(pointer or "/", []).append(message)
        super().__init__(f"the rule set has {len(problems)} problem(s); see errors", errors=errors)


class RuleSetNotDraft(Conflict):
    code = "conflict.rule_set_published"

    def __init__(self, rule_set_id: int, version: int) -> None:
        message = (
            f"rule set {rule_set_id} is published as version {version} and cannot change; "
            "create a draft (POST /v1/rule-sets) to make a new version"
        )
        super().__init__(message, errors={"rule_set": [message], "version": [str(version)]})
        self.version = version


class PreconditionFailed(CreditctlError):
    """A conditional request (If-Match) whose condition does not hold: the resource is at another
    revision now. `etag` names the current one (the answer's ETag header too)."""

    code = "precondition.failed"

    def __init__(self, message: str, *, etag: str) -> None:
        super().__init__(message, errors={"If-Match": [f"the current ETag is {etag}"]})
        self.etag = etag
        self.headers = {"ETag": etag}


class StaleRuleSet(PreconditionFailed):
    code = "precondition.rule_set_changed"

    def __init__(self, rule_set_id: int, etag: str) -> None:
        super().__init__(
            f"rule set {rule_set_id} was changed since the If-Match you sent; it is at ETag {etag} now: "
            "read it again (GET) and send your change with that ETag",
            etag=etag,
        )


class RuleSetChanged(Conflict):
    """Without If-Match: the draft was changed by another call between this one's read and its write
    (both in one transaction); nothing was written, the other call's change stands."""

    code = "conflict.rule_set_changed"

    def __init__(self, rule_set_id: int, etag: str) -> None:
        super().__init__(
            f"rule set {rule_set_id} was changed by another call at the same time (it is at ETag {etag} "
            "now); nothing was written: read it again and repeat your change (with If-Match)",
            errors={"rule_set": ["changed meanwhile"], "etag": [etag]},
        )
        self.headers = {"ETag": etag}


class RuleSetIsDraft(Conflict):
    code = "conflict.rule_set_draft"

    def __init__(self, rule_set_id: int) -> None:
        super().__init__(
            f"rule set {rule_set_id} is a draft; only a published version can be used for this",
            field="rule_set",
        )


class AuditSealConflict(Conflict):
    """Another sealer sealed some of the same events (or took the same chain positions) first."""

    code = "conflict.audit_seal"

    def __init__(self) -> None:
        super().__init__("another sealer extended the audit chain at the same time; try again")


class NotDeferred(Conflict):
    """Release, reject and review rechecks act on deferred orders only."""

    code = "conflict.not_deferred"

    def __init__(self, order_id: str, state: str, outcome: str) -> None:
        super().__init__(
            f"order {order_id!r} is not deferred (it is {state}, {outcome}); only a deferred order "
            "can be released or rejected",
            field="order_id",
        )
        self.state = state


class ReleaseRefused(Conflict):
    """A release the account cannot take now: no usable balance (never approve on unknown state), or
    the account is frozen."""

    code = "conflict.release_refused"

    def __init__(self, order_id: str, why: str) -> None:
        super().__init__(f"order {order_id!r} cannot be released: {why}", field="order_id")


class BeyondApprovalAuthority(Forbidden):
    """A release above the releasing key's approval limit (or by a key with none)."""

    code = "auth.approval_authority"

    def __init__(self, order_id: str, amount: str, limit: str | None, key_name: str) -> None:
        authority = f"approval authority {limit}" if limit is not None else "no approval authority"
        super().__init__(
            f"key {key_name!r} has {authority}; order {order_id!r} is for {amount}: "
            "a key with a larger approval limit must release it",
            errors={"approval_limit": [limit or "none"], "amount": [amount]},
        )
        self.amount = amount
        self.limit = limit
