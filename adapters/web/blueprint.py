"""The one Blueprint class every API area uses: request bodies parsed exactly (Decimal, no NaN)."""

from __future__ import annotations

from flask_smorest import Blueprint

from adapters.web.json_provider import ExactJSONParser


class ApiBlueprint(Blueprint):
    ARGUMENTS_PARSER = ExactJSONParser()
