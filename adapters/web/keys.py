"""/v1/keys/current: which key is calling, and whose it is (the owner four eyes compares)."""

from __future__ import annotations

from adapters.web.auth import current_key, requires
from adapters.web.blueprint import ApiBlueprint
from adapters.web.schemas.keys import KeySchema
from creditctl.domain.api_key import ApiKey, Role

bp = ApiBlueprint(
    "keys",
    __name__,
    url_prefix="/v1/keys",
    description="API keys: the calling key, its owner and authority (keys are made with `creditctl keys`).",
)


@bp.route("/current", methods=["GET"])
@requires(*Role)
@bp.response(200, KeySchema)
def current() -> ApiKey:
    """The calling key: id, name, the owner it is issued to, role, customers it is limited to, approval
    limit. Never the secret."""
    return current_key()
