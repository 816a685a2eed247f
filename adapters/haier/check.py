"""`creditctl haier check`: fetch a token and one balance, step by step, and say what happened.

Every step reports its latency and error code; nothing secret is printed (errors pass the redactor)."""

from __future__ import annotations

import time
from typing import Any

from adapters.haier.balance_client import BalanceClient
from adapters.haier.config import HaierConfig
from adapters.haier.deadline import Deadline
from adapters.haier.redaction import Redactor
from adapters.haier.token_client import TokenClient
from adapters.outbound.guarded_adapter import guarded_session
from creditctl.ports.balance_provider import BalanceUnavailable
from creditctl.ports.clock import Clock


def run_check(
    config: HaierConfig,
    *,
    config_name: str,
    clock: Clock,
    customer_code: str | None = None,
    allow_loopback: bool = False,
    timeout_s: float = 30.0,
) -> list[dict[str, Any]]:
    """[{"step", "ok", "latency_ms", "error_code", "detail"}] for the token and the balance query."""
    redactor = Redactor(config.secrets())
    redactor.add_basic(config.client_id, config.client_secret)
    session = guarded_session(allow_loopback=allow_loopback)
    tokens = TokenClient(config, session=session, clock=clock, redactor=redactor, config_name=config_name)
    steps: list[dict[str, Any]] = []
    token = _step(
        steps,
        "token",
        lambda: tokens.fetch(Deadline(timeout_s)),
        redactor,
        lambda t: f"token from {tokens.token_url}, expires {t.expires_at.isoformat()}",
    )
    if token is None:
        return steps
    redactor.add(token.value)
    code = customer_code or next(iter(sorted(config.customers)), None)
    if code is None:
        steps.append(
            {
                "step": "balance",
                "ok": False,
                "latency_ms": 0,
                "error_code": "UNKNOWN_CUSTOMER",
                "detail": "no customer listed in the config; pass one",
            }
        )
        return steps
    password = config.customer_password_for(code)
    if password is None:
        steps.append(
            {
                "step": "balance",
                "ok": False,
                "latency_ms": 0,
                "error_code": "UNKNOWN_CUSTOMER",
                "detail": f"no password configured for customer {code}",
            }
        )
        return steps
    balances = BalanceClient(config, session=session, redactor=redactor, config_name=config_name)
    _step(
        steps,
        "balance",
        lambda: balances.query(code, password, token, Deadline(timeout_s)),
        redactor,
        lambda entries: (
            f"customer {code}: {len(entries)} payer account(s): "
            + ", ".join(f"{e.sale_group_code} {e.amount}" for e in entries)
        ),
    )
    return steps


def _step(steps: list[dict[str, Any]], name: str, call: Any, redactor: Redactor, describe: Any) -> Any:
    started = time.perf_counter()
    try:
        result = call()
    except BalanceUnavailable as exc:
        steps.append(
            {
                "step": name,
                "ok": False,
                "latency_ms": _ms(started),
                "error_code": exc.code,
                "detail": redactor.scrub(exc.message),
            }
        )
        return None
    except Exception as exc:  # a check reports; it never crashes with a secret in a traceback
        steps.append(
            {
                "step": name,
                "ok": False,
                "latency_ms": _ms(started),
                "error_code": "SERVICE_UNAVAILABLE",
                "detail": redactor.scrub(f"{type(exc).__name__}: {exc}"),
            }
        )
        return None
    steps.append(
        {
            "step": name,
            "ok": True,
            "latency_ms": _ms(started),
            "error_code": None,
            "detail": redactor.scrub(describe(result)),
        }
    )
    return result


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
