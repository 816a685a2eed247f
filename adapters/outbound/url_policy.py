"""SSRF guard for configured URLs: https to public addresses; plain http only to a local emulator.

Configured URLs (Haier base and token URL, later webhooks) are typed by administrators, so a
mistyped or hostile URL must not make the service talk to cloud metadata, the private network or
itself. Refused always: every address that is not global (ipaddress's `is_global`, plus the ranges
registered after this Python's table), metadata addresses, 0.0.0.0, multicast, userinfo, schemes other
than http(s), numeric host spellings other than a canonical dotted quad, Teredo, and IPv6 forms that
embed an IPv4 address (IPv4-mapped, -translated, -compatible, 6to4, NAT64) unless that IPv4 address is
one the service may call (DNS64 networks reach a public IPv4 host through 64:ff9b::/96). Loopback only
when allowed, and only in its own spellings (127.0.0.0/8, ::1, localhost), never embedded.
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
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the last 32 bits are the IPv4 address
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # RFC 2765 (SIIT)
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated (RFC 4291); :: and ::1 are not IPv4
# Not global, though Python 3.11's `is_global` says they are: its IANA table predates them or keeps
# deprecated ranges. Checked besides is_global so a newer Python changes nothing.
NOT_GLOBAL = tuple(
    ipaddress.ip_network(n)
    for n in (
        "fec0::/10",  # site-local, deprecated (RFC 3879): still routed inside some networks
        "64:ff9b:1::/48",  # local-use NAT64 (RFC 8215): translates to private IPv4 networks
        "3fff::/20",  # documentation (RFC 9637)
        "5f00::/16",  # SRv6 segment identifiers (RFC 9602)
        "100:0:0:1::/64",  # dummy prefix (RFC 9780)
    )
)
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


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for: IPv4-mapped, -translated or -compatible, 6to4, or
    NAT64's well-known prefix; None for any other address."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or ip in _IPV4_TRANSLATED or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def check_address(address: str | IPAddress, *, allow_loopback: bool = False) -> IPAddress:
    """Return the address if the service may connect to it, else raise UrlRefused saying why."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address) and _embeds_an_allowed_ipv4(ip):
        return ip
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
    if not ip.is_global or any(ip in network for network in NOT_GLOBAL):
        raise UrlRefused(f"{ip} is not a public address (reserved or shared range)")
    return ip


def _embeds_an_allowed_ipv4(ip: ipaddress.IPv6Address) -> bool:
    """True when `ip` stands for an IPv4 address the service may call; UrlRefused when it stands for
    one it may not (or is Teredo); False when it embeds none."""
    inner = embedded_ipv4(ip)
    if inner is not None:
        try:
            check_address(inner)  # never loopback: an emulator is reached by its own address
        except UrlRefused as exc:
            raise UrlRefused(f"{ip} embeds an IPv4 address, {inner}, that is refused: {exc}") from None
        return True
    if ip.teredo:
        raise UrlRefused(f"{ip} embeds an IPv4 address (Teredo)")
    return False


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
