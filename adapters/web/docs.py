"""The API docs page's assets, served by the app itself: a distributor's network may have no internet."""

from __future__ import annotations

from flask import Blueprint
from swagger_ui_bundle import swagger_ui_path

bp = Blueprint("docs_assets", __name__, static_folder=swagger_ui_path, static_url_path="/docs/assets")
ASSETS_URL = "/docs/assets/"
