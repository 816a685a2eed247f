"""/v1/webhooks: subscriptions to events (admin, not limited to customers); the secret is shown once."""

from __future__ import annotations

from typing import Any

from adapters.web.auth import actor, requires_global_admin
from adapters.web.blueprint import ApiBlueprint
from adapters.web.context import ctx
from adapters.web.idempotency import idempotent
from adapters.web.schemas.webhooks import (
    NewSecretSchema,
    SubscriptionListSchema,
    SubscriptionRequestSchema,
    SubscriptionSchema,
)
from creditctl.domain.errors import NotFound
from creditctl.domain.webhook import Subscription
from creditctl.services.context import WebhookTools
from creditctl.services.webhooks import (
    NewSecret,
    create_subscription,
    delete_subscription,
    get_subscription,
    rotate_secret,
)

bp = ApiBlueprint(
    "webhooks",
    __name__,
    url_prefix="/v1/webhooks",
    description="Webhook subscriptions: signed POSTs of events (admin, not limited to customers).",
)
_BUSY = (409, "It kept being changed by other calls meanwhile; try again")
_ERRORS = {401: "No or an unknown API key", 403: "Not an admin key, or one limited to some customers"}


def _documented_errors(*extra: tuple[int, str]) -> Any:
    def decorate(view: Any) -> Any:
        for status, description in (*_ERRORS.items(), *extra):
            view = bp.alt_response(status, description=description)(view)
        return view

    return decorate


def _tools() -> WebhookTools:
    tools = ctx().webhooks
    if tools is None:
        raise NotFound("webhooks are not enabled in this deployment")
    return tools


def _shown(subscription: Subscription) -> dict[str, Any]:
    return {
        "id": subscription.id,
        "url": subscription.url,
        "events": list(subscription.events),
        "status": subscription.status.value,
        "disabled_reason": subscription.disabled_reason,
        "previous_secret_until": subscription.previous_secret_until,
        "created_by": subscription.created_by,
        "created_at": subscription.created_at,
    }


def _with_secret(new: NewSecret) -> dict[str, Any]:
    return _shown(new.subscription) | {"secret": new.secret}


@bp.route("", methods=["POST"])
@requires_global_admin
@idempotent(secret_box=lambda: _tools().box)  # the answer shows the secret: kept sealed for a retry
@bp.arguments(SubscriptionRequestSchema())
@bp.response(201, NewSecretSchema, description="The subscription, with its secret shown this once")
@_documented_errors((422, "A URL the service may not call, or unknown event types"))
def create(body: dict[str, Any]) -> dict[str, Any]:
    """Subscribe a URL to event types: https to a public address (http to loopback only where allowed)."""
    t = _tools()
    new = create_subscription(
        body["url"], body["events"], store=t.store, box=t.box, check_url=t.check_url, actor=actor()
    )
    return _with_secret(new)


@bp.route("", methods=["GET"])
@requires_global_admin
@bp.response(200, SubscriptionListSchema)
@_documented_errors()
def list_all() -> dict[str, Any]:
    """Every subscription (never a secret)."""
    return {"webhooks": [_shown(s) for s in _tools().store.all()]}


@bp.route("/<string:subscription_id>", methods=["GET"])
@requires_global_admin
@bp.response(200, SubscriptionSchema)
@_documented_errors((404, "No subscription with this id"))
def read(subscription_id: str) -> dict[str, Any]:
    """One subscription (never its secret)."""
    return _shown(get_subscription(subscription_id, store=_tools().store))


@bp.route("/<string:subscription_id>", methods=["DELETE"])
@requires_global_admin
@bp.response(204, description="Deleted; nothing more is delivered to it")
@_documented_errors((404, "No subscription with this id"), _BUSY)
def remove(subscription_id: str) -> tuple[str, int]:
    """Delete a subscription and its pending deliveries."""
    delete_subscription(subscription_id, store=_tools().store, actor=actor())
    return "", 204


@bp.route("/<string:subscription_id>/rotate-secret", methods=["POST"])
@requires_global_admin
@idempotent(secret_box=lambda: _tools().box)
@bp.response(200, NewSecretSchema, description="The new secret, shown this once")
@_documented_errors((404, "No subscription with this id"), _BUSY)
def rotate(subscription_id: str) -> dict[str, Any]:
    """A new secret; the old one keeps signing too (a second v1=) for the overlap period."""
    t = _tools()
    return _with_secret(
        rotate_secret(subscription_id, store=t.store, box=t.box, overlap_s=t.secret_overlap_s, actor=actor())
    )
