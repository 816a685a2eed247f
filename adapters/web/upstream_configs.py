"""/v1/admin/haier/configs/{name}: the Haier connection configs (admin, not limited to customers).
Secrets go in, never out."""

from __future__ import annotations

from typing import Any

from flask import request

from adapters.web.auth import actor, requires_global_admin
from adapters.web.blueprint import ApiBlueprint
from adapters.web.context import ctx
from adapters.web.idempotency import idempotent
from adapters.web.schemas.upstream_configs import CONFIG_NAME, HaierConfigSchema, RedactedConfigSchema
from creditctl.domain.errors import NotFound
from creditctl.services.context import UpstreamConfigTools
from creditctl.services.upstream_configs import get_config, put_config

bp = ApiBlueprint(
    "haier_configs",
    __name__,
    url_prefix="/v1/admin/haier/configs",
    description="Connections to Haier's JSH open platform (admin).",
)


NAME = [
    {
        "in": "path",
        "name": "name",
        "description": "The config's name: 1 to 64 letters, digits, '-' or '_'",
        "schema": {"type": "string", "pattern": CONFIG_NAME},
    }
]


def _tools() -> UpstreamConfigTools:
    tools = ctx().upstream_configs
    if tools is None:
        raise NotFound("upstream configs are not enabled in this deployment")
    return tools


@bp.route("/<string:name>", methods=["PUT"], parameters=NAME)
@requires_global_admin
@idempotent()
@bp.arguments(HaierConfigSchema)
@bp.response(200, RedactedConfigSchema)
def put(_body: dict[str, Any], name: str) -> dict[str, Any]:
    """Create or replace a config; a secret sent as "set" keeps the stored value."""
    c, tools = ctx(), _tools()
    document = request.get_json()  # as sent: the adapter's validator is the authority on its shape
    put_config(
        name,
        document,
        kind=tools.kind,
        validate=tools.validate,
        redact=tools.redact,
        uow=c.uow(),
        box=tools.box,
        clock=c.clock,
        actor=actor(),
    )
    return get_config(name, validate=tools.validate, redact=tools.redact, uow=c.uow(), box=tools.box)


@bp.route("/<string:name>", methods=["GET"], parameters=NAME)
@requires_global_admin
@bp.response(200, RedactedConfigSchema)
def get(name: str) -> dict[str, Any]:
    """The config with every secret shown as "set"."""
    c, tools = ctx(), _tools()
    return get_config(name, validate=tools.validate, redact=tools.redact, uow=c.uow(), box=tools.box)
