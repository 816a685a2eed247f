"""Console sign-in: an API key is checked once, the session cookie keeps only its hash and id.

The cookie is signed with a key derived from the instance's secret keys (AppContext.session_keys),
`HttpOnly`, `SameSite=Lax`, `Secure` whenever the request came over https (directly, or through a proxy
trusted by CREDITCTL_TRUSTED_PROXIES that says so in X-Forwarded-Proto) and always with
CREDITCTL_CONSOLE_SECURE_COOKIE, and ends after CONSOLE_SESSION_HOURS (8 by default) whatever the
activity. The server keeps each session (a hash of the cookie's random token, ConsoleSessions): signing
out ends it for every copy of the cookie. Every POST carries the session's CSRF token; a request without it
(or with another) is refused before its view runs. Every console answer forbids framing (CSP
frame-ancestors 'none', X-Frame-Options DENY) and runs no script; every page but the stylesheet is
`Cache-Control: no-store`."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import timedelta
from typing import Any

from flask import (
    Flask,
    Response,
    abort,
    current_app,
    g,
    has_request_context,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface

from adapters.web.auth import KeyCache
from adapters.web.console.blueprint import bp
from adapters.web.console.pages import safe_target, this_page
from adapters.web.context import ctx
from creditctl.domain.api_key import ApiKey, hash_secret
from creditctl.domain.errors import Unauthenticated
from creditctl.ports.console_sessions import ConsoleSessions
from creditctl.services.api_keys import authenticate, key_by_hash

OPEN_ENDPOINTS = {"console.sign_in", "console.static"}
# No script at all (no page needs one), styles from the app (and the charts' inline colours), forms posted
# back to the console only, never shown in a frame (clickjacking a freeze or a release).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class ConsoleSessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie session, marked `Secure` whenever this request came over https (behind a
    trusted proxy, as its X-Forwarded-Proto says: ProxyFix has set the scheme), or always by setting."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or (has_request_context() and request.is_secure)

    def open_session(self, app: Flask, request: Any) -> Any:
        """Outside the cookie's path (the API: authenticated by header only) no session is opened: building
        the signing serializer cost every API request ~15 µs. Flask hands views a NullSession there, which
        refuses writes, and saves nothing."""
        if not request.path.startswith(app.config["SESSION_COOKIE_PATH"].rstrip("/")):
            return None
        return super().open_session(app, request)


def init_app(app: Flask) -> None:
    """Session cookie settings (the API never reads the cookie: it authenticates by header only)."""
    keys = ctx_keys(app)
    if keys and not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = keys[0]
        app.config["SECRET_KEY_FALLBACKS"] = list(keys[1:])  # older keys still read, during rotation
    hours = float(app.config.setdefault("CONSOLE_SESSION_HOURS", 8.0))  # not money: hours
    # Flask's defaults hold these keys already (name "session", no SameSite, path "/"): set ours over them.
    if app.config["SESSION_COOKIE_NAME"] == "session":
        app.config["SESSION_COOKIE_NAME"] = "creditctl_console"
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = app.config.get("SESSION_COOKIE_SAMESITE") or "Lax"
    app.config["SESSION_COOKIE_PATH"] = app.config.get("SESSION_COOKIE_PATH") or "/console/"
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=hours)
    app.session_interface = ConsoleSessionInterface()


def ctx_keys(app: Flask) -> tuple[str, ...]:
    return tuple(app.extensions["creditctl"].session_keys)


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return str(token)


@bp.context_processor
def _template_globals() -> dict[str, Any]:
    return {"csrf_token": csrf_token}


@bp.before_request
def _guard() -> Any:
    if request.endpoint == "console.sign_out" and signed_in_key() is None:
        return redirect(url_for("console.sign_in"))  # already ended (expired, elsewhere): nothing to check
    if request.method == "POST":
        sent = request.form.get("csrf_token", "")
        if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
            abort(400, description="The form's CSRF token is missing or does not match this session")
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    key = signed_in_key()
    if key is None:
        return redirect(url_for("console.sign_in", next=this_page()))
    g.api_key = key  # adapters.web.auth.check_role and scope() now see the session's key
    return None


def _max_age_s() -> float:
    return float(current_app.config["CONSOLE_SESSION_HOURS"]) * 3600  # not money: seconds


def _sessions() -> ConsoleSessions | None:
    return ctx().console_sessions


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@bp.after_request
def _headers(response: Response) -> Response:
    """Anti-framing and no script on every console answer; no copy kept by a browser or proxy of a page
    (figures of accounts, CSRF tokens), only of the stylesheet."""
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Frame-Options"] = "DENY"
    if request.endpoint != "console.static":
        response.headers["Cache-Control"] = "no-store"
    return response


def signed_in_key() -> ApiKey | None:
    """The session's key while the server still holds the session (not signed out, not expired), the
    cookie is young enough, and the key is not revoked."""
    key_hash, issued, token = session.get("key_hash"), session.get("issued", 0), session.get("sid")
    if not key_hash:
        return None  # signed out: keep the sign-in form's CSRF token
    sessions = _sessions()
    if time.time() - float(issued) > _max_age_s() or not token or sessions is None:
        session.clear()
        return None
    if sessions.key_of(_token_hash(str(token))) != session.get("key_id"):
        session.clear()  # signed out (from any copy of this cookie), expired, or not ours
        return None
    cache: KeyCache = current_app.extensions["creditctl.keys"]
    key = cache.get(key_hash)
    if key is None:
        try:
            key = key_by_hash(key_hash, uow=ctx().uow())
        except Unauthenticated:
            session.clear()
            return None
        cache.put(key_hash, key)
    return key if key.id == session.get("key_id") else None


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Any:
    """GET: the form. POST: check the key; on success a new session (fresh CSRF token) holding its hash."""
    error = None
    sessions = _sessions()
    if not current_app.config.get("SECRET_KEY") or sessions is None:
        error = "The console is not configured: this instance has no secret keys or no session store."
    elif request.method == "POST":
        secret = request.form.get("api_key", "").strip()
        try:
            key = authenticate(secret, uow=ctx().uow())
        except Unauthenticated as exc:
            error = exc.message
        else:
            token = secrets.token_urlsafe(32)
            assert sessions is not None
            sessions.open(_token_hash(token), key.id, lifetime_s=_max_age_s())
            session.clear()  # no value chosen before sign-in survives it (session fixation)
            session.permanent = True
            session.update(key_hash=hash_secret(secret), key_id=key.id, issued=time.time(), sid=token)
            csrf_token()
            return redirect(_safe_next(request.args.get("next")))
    status = 401 if error and request.method == "POST" else 200
    return render_template("console/sign_in.html", error=error), status


def _safe_next(target: str | None) -> str:
    """Only a path inside the console: never an open redirect to another site, never a header break."""
    return safe_target(target, "/console/", url_for("console.accounts"))


@bp.route("/sign-out", methods=["POST"])
def sign_out() -> Any:
    """Ends the session on the server too: a copy of the cookie kept elsewhere no longer signs in."""
    token, sessions = session.get("sid"), _sessions()
    if token and sessions is not None:
        sessions.close(_token_hash(str(token)))
    session.clear()
    return redirect(url_for("console.sign_in"))
