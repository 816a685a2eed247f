"""Check the address at connection time too, so a DNS answer that changes after the config was
checked (DNS rebinding) still cannot point the client at loopback, metadata or the private network.

The socket connects to the very address that was checked; TLS still verifies the host name.
Only direct connections are guarded: the default session ignores environment proxies and .netrc.
"""

from __future__ import annotations

import socket
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection as urllib3_connection

from adapters.outbound.url_policy import Resolver, UrlRefused, check_address, system_resolver


class AddressRefused(NewConnectionError):
    """The host resolved to an address the URL policy refuses; nothing was connected."""


class _GuardedConnectionMixin:
    allow_loopback: bool = False
    resolver: Resolver = staticmethod(system_resolver)  # type: ignore[assignment]

    def _new_conn(self) -> socket.socket:
        conn: Any = self
        try:
            addresses = list(self.resolver(conn._dns_host, conn.port))
        except OSError as exc:
            raise NameResolutionError(conn.host, conn, exc) from exc  # type: ignore[arg-type]
        try:
            for address in addresses:
                check_address(address, allow_loopback=self.allow_loopback)
        except UrlRefused as exc:
            raise AddressRefused(conn, f"{conn.host} resolves to {exc}") from None
        last: OSError | None = None
        for address in addresses:
            try:
                return urllib3_connection.create_connection(
                    (address, conn.port),
                    conn.timeout,
                    source_address=conn.source_address,
                    socket_options=conn.socket_options,
                )
            except TimeoutError as exc:
                raise ConnectTimeoutError(conn, f"connection to {conn.host} timed out") from exc
            except OSError as exc:
                last = exc
        raise NewConnectionError(conn, f"failed to connect to {conn.host}: {last}")


class GuardedHTTPAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections refuse addresses the URL policy refuses."""

    def __init__(self, *, allow_loopback: bool = False, resolver: Resolver = system_resolver) -> None:
        attrs = {"allow_loopback": allow_loopback, "resolver": staticmethod(resolver)}
        http_conn = type("GuardedHTTPConnection", (_GuardedConnectionMixin, HTTPConnection), attrs)
        https_conn = type("GuardedHTTPSConnection", (_GuardedConnectionMixin, HTTPSConnection), attrs)
        self._pool_classes = {
            "http": type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
            "https": type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
        }
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pool_classes


def guarded_session(
    *, allow_loopback: bool = False, resolver: Resolver = system_resolver
) -> requests.Session:
    """A requests Session that connects only to addresses the URL policy allows."""
    session = requests.Session()
    session.trust_env = False  # env proxies would bypass the guard; .netrc would override our token
    adapter = GuardedHTTPAdapter(allow_loopback=allow_loopback, resolver=resolver)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
