"""The connection-time guard: a canary on loopback records zero hits unless loopback is allowed."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest
import requests

from adapters.haier.transport import _caused_by
from adapters.outbound.guarded_adapter import AddressRefused, guarded_session
from creditctl.ports.balance_provider import BalanceUnavailable

from .conftest import FakeTime, config_body, make_provider

pytestmark = pytest.mark.adapters


class Canary(http.server.ThreadingHTTPServer):
    hits = 0
    redirect_to: str | None = None


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Canary

    def _answer(self) -> None:
        self.server.hits += 1
        if self.server.redirect_to:
            self.send_response(302)
            self.send_header("Location", self.server.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b'{"access_token": "canary-token", "expires_in": 3600}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


def _serve() -> Canary:
    server = Canary(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    return server


@pytest.fixture
def canary() -> Iterator[Canary]:
    server = _serve()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def redirector(canary: Canary) -> Iterator[Canary]:
    server = _serve()
    server.redirect_to = f"http://127.0.0.1:{canary.server_port}/latest/meta-data"
    yield server
    server.shutdown()
    server.server_close()


def test_refuses_loopback_unless_allowed(canary: Canary) -> None:
    url = f"http://127.0.0.1:{canary.server_port}/"
    with pytest.raises(requests.ConnectionError) as caught:
        guarded_session().get(url, timeout=2)
    assert _caused_by(caught.value, AddressRefused) is not None
    assert canary.hits == 0
    assert guarded_session(allow_loopback=True).get(url, timeout=2).status_code == 200
    assert canary.hits == 1


def test_refuses_a_name_that_rebinds_to_loopback_after_the_config_was_checked(canary: Canary) -> None:
    session = guarded_session(resolver=lambda host, port: ["127.0.0.1"])
    with pytest.raises(requests.ConnectionError, match="loopback"):
        session.get(f"http://rebind.test:{canary.server_port}/", timeout=2)
    assert canary.hits == 0


def test_refuses_a_name_that_resolves_to_metadata_even_with_loopback_allowed(canary: Canary) -> None:
    session = guarded_session(allow_loopback=True, resolver=lambda host, port: ["169.254.169.254"])
    with pytest.raises(requests.ConnectionError, match="metadata"):
        session.get(f"http://meta.test:{canary.server_port}/", timeout=2)


def test_provider_reports_a_refused_address_as_not_sent(canary: Canary, fake_time: FakeTime) -> None:
    from adapters.haier.config import HaierConfig

    base = f"http://127.0.0.1:{canary.server_port}"
    config = HaierConfig.from_dict(config_body(base_url=base), allow_loopback=True)
    provider = make_provider(fake_time, config)  # the provider itself does not allow loopback
    with pytest.raises(BalanceUnavailable) as caught:
        provider.fetch("8800633175", timeout_s=2)
    assert (caught.value.code, caught.value.sent) == ("SERVICE_UNAVAILABLE", False)
    assert canary.hits == 0


def test_a_redirect_to_loopback_is_not_followed(
    redirector: Canary, canary: Canary, fake_time: FakeTime
) -> None:
    from adapters.haier.config import HaierConfig

    base = f"http://127.0.0.1:{redirector.server_port}"
    config = HaierConfig.from_dict(config_body(base_url=base), allow_loopback=True)
    provider = make_provider(fake_time, config, allow_loopback=True)
    with pytest.raises(BalanceUnavailable, match="redirect") as caught:
        provider.fetch("8800633175", timeout_s=2)
    assert caught.value.code == "UPSTREAM_MALFORMED"
    assert redirector.hits == 1  # the token call, answered with a redirect
    assert canary.hits == 0
