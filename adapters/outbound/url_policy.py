"""SSRF guard for configured URLs: https to public addresses; plain http only to a local emulator.

Configured URLs (Haier base and token URL, later webhooks) are typed by administrators, so a
mistyped or hostile URL must not make the service talk to cloud metadata, the private network or
itself. Refused always: link-local, private, shared and reserved ranges, metadata addresses,
0.0.0.0, multicast, userinfo, schemes other than http(s), numeric host spellings other than a
canonical dotted quad, and IPv6 forms that embed an IPv4 address. Loopback only when allowed.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Iterable[str]]

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "192.0.0.192", "fd00:ec2::254")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_DOTTED_QUAD = re.compile(r"^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_HOST_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*\.?$")


class UrlRefused(ValueError):
    """A URL the service will not call; the message names the problem."""


def system_resolver(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (socket.getaddrinfo), as text."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def check_url(url: str, *, allow_loopback: bool = False, resolver: Resolver | None = system_resolver) -> str:
    """Return `url` unchanged if the service may call it, else raise UrlRefused naming the problem.

    Host names are resolved with `resolver` and every address must pass; a name that does not
    resolve is accepted for https (the connection-time guard checks again) and refused for http.
    """
    if not isinstance(url, str) or not url:
        raise UrlRefused("must be a URL such as https://openplat.haier.net")
    if len(url) > 2048 or any(c.isspace() or ord(c) < 32 or c == "\\" for c in url):
        raise UrlRefused("contains whitespace, control characters or backslashes")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UrlRefused(f"scheme {scheme or '(none)'!r} is not allowed; use https")
    if "@" in parts.netloc:
        raise UrlRefused("must not carry a user name or password (user@host)")
    host = (parts.hostname or "").lower()
    if not host:
        raise UrlRefused("has no host")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise UrlRefused("has an invalid port") from None
    is_loopback = _check_host(host, port, allow_loopback=allow_loopback, resolver=resolver)
    if scheme == "http" and not is_loopback:
        raise UrlRefused("plain http is allowed only to a loopback emulator; use https")
    return url


def check_address(address: str | IPAddress, *, allow_loopback: bool = False) -> IPAddress:
    """Return the address if the service may connect to it, else raise UrlRefused saying why."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address) and (
        ip.ipv4_mapped or ip.sixtofour or ip.teredo or ip in _NAT64
    ):
        raise UrlRefused(f"{ip} embeds an IPv4 address (IPv4-mapped, 6to4, Teredo or NAT64)")
    if ip.is_unspecified:
        raise UrlRefused(f"{ip} is the unspecified address")
    if ip in METADATA_ADDRESSES:
        raise UrlRefused(f"{ip} is a cloud metadata address")
    if ip.is_loopback:
        if not allow_loopback:
            raise UrlRefused(f"{ip} is a loopback address (allowed only for a local emulator)")
        return ip
    if ip.is_link_local:
        raise UrlRefused(f"{ip} is a link-local address")
    if ip.is_multicast:
        raise UrlRefused(f"{ip} is a multicast address")
    if ip.is_private:
        raise UrlRefused(f"{ip} is a private address")
    if not ip.is_global:
        raise UrlRefused(f"{ip} is not a public address (reserved or shared range)")
    return ip


def _check_host(host: str, port: int, *, allow_loopback: bool, resolver: Resolver | None) -> bool:
    """Check a URL's host; True when it is loopback (allowed here only when allow_loopback)."""
    if ":" in host:  # bracketed IPv6 literal
        if "%" in host:
            raise UrlRefused("IPv6 zone identifiers are not allowed")
        return check_address(host, allow_loopback=allow_loopback).is_loopback
    if _DOTTED_QUAD.match(host):
        return check_address(host, allow_loopback=allow_loopback).is_loopback
    labels = host.rstrip(".").split(".")
    if _NUMERIC_LABEL.match(labels[-1]):
        raise UrlRefused(f"host {host!r} is a non-canonical IP spelling (integer, hex or octal)")
    if not host.isascii() or not _HOST_NAME.match(host):
        raise UrlRefused(f"host {host!r} is not a valid host name (use the punycode form)")
    if host.rstrip(".") == "localhost" or host.rstrip(".").endswith(".localhost"):
        if not allow_loopback:
            raise UrlRefused(f"host {host!r} is loopback (allowed only for a local emulator)")
        return True
    return _check_resolved(host, port, allow_loopback=allow_loopback, resolver=resolver)


def _check_resolved(host: str, port: int, *, allow_loopback: bool, resolver: Resolver | None) -> bool:
    if resolver is None:
        return False
    try:
        addresses = [ipaddress.ip_address(a.split("%")[0]) for a in resolver(host, port)]
    except (OSError, ValueError):
        return False
    for ip in addresses:
        try:
            check_address(ip, allow_loopback=allow_loopback)
        except UrlRefused as exc:
            raise UrlRefused(f"host {host!r} resolves to {ip}: {exc}") from None
    return bool(addresses) and all(ip.is_loopback for ip in addresses)
