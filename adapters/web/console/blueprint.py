"""The console's one blueprint and its navigation: each page module adds its routes and its menu entry.

Each area (accounts, the review queue, the audit trail, ...) is one module here and one template: it
registers its views on `bp` and lists its NavItems; the layout shows the entries the signed-in key may use."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint

from creditctl.domain.api_key import ApiKey, Role

bp = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="../templates",
    static_folder="../static/console",
    static_url_path="/static",
)

ALL_ROLES = (Role.ADMIN, Role.AUDITOR, Role.ORDERS)


@dataclass(frozen=True)
class NavItem:
    label: str
    endpoint: str
    roles: tuple[Role, ...] = ALL_ROLES
    global_scope: bool = False  # shared state: hidden from keys limited to some customers

    def allowed(self, key: ApiKey) -> bool:
        return key.role in self.roles and not (self.global_scope and key.customers is not None)


NAV: list[NavItem] = []
