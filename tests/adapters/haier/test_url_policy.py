"""SSRF guard on configured URLs (reliability suite item 12)."""

from __future__ import annotations

import ipaddress

import pytest
import requests

from adapters.outbound.url_policy import UrlRefused, check_address, check_url

pytestmark = pytest.mark.adapters


def resolves_to(*addresses: str):
    return lambda host, port: list(addresses)


def unresolvable(host: str, port: int) -> list[str]:
    raise OSError("no such host")


class TestRefusedAlways:
    @pytest.mark.parametrize(
        ("url", "problem"),
        [
            ("http://169.254.169.254/latest/meta-data", "metadata"),
            ("https://169.254.169.254/", "metadata"),
            ("https://100.100.100.200/", "metadata"),
            ("https://169.254.10.10/", "link-local"),
            ("https://[fe80::1]/", "link-local"),
            ("https://10.0.0.8/", "private"),
            ("https://172.16.5.4/", "private"),
            ("https://192.168.1.1/", "private"),
            ("https://[fd00::1]/", "private"),
            ("https://100.64.0.1/", "not a public address"),
            ("https://0.0.0.0/", "unspecified"),
            ("https://[::]/", "unspecified"),
            ("https://224.0.0.1/", "multicast"),
            ("https://[ff02::1]/", "multicast"),
            ("https://good@evil.example", "user name"),
            ("https://user:pass@openplat.haier.net", "user name"),
            ("file:///etc/passwd", "scheme 'file'"),
            ("gopher://openplat.haier.net/", "scheme 'gopher'"),
            ("ftp://openplat.haier.net/", "scheme 'ftp'"),
            ("openplat.haier.net", "scheme"),
            ("http://2130706433/", "non-canonical"),
            ("http://0x7f.1/", "non-canonical"),
            ("http://0x7f000001/", "non-canonical"),
            ("http://017700000001/", "non-canonical"),
            ("http://127.1/", "non-canonical"),
            ("http://0177.0.0.1/", "non-canonical"),
            ("https://[::ffff:127.0.0.1]/", "embeds an IPv4"),
            ("https://[::ffff:169.254.169.254]/", "embeds an IPv4"),
            ("https://[64:ff9b::a9fe:a9fe]/", "embeds an IPv4"),
            ("https://[2002:7f00:1::]/", "embeds an IPv4"),
            ("https://open plat.haier.net/", "whitespace"),
            ("https://openplat.haier.net\\@evil/", "backslash"),
            ("https://openplat.haier.net:99999/", "invalid port"),
            ("https://[fe80::1%25eth0]/", "zone"),
            ("https://ex\u0430mple.com/", "punycode"),
            ("", "must be a URL"),
        ],
    )
    def test_refuses_even_when_loopback_is_allowed(self, url: str, problem: str) -> None:
        with pytest.raises(UrlRefused, match=problem):
            check_url(url, allow_loopback=True, resolver=resolves_to("93.184.216.34"))

    def test_refuses_a_name_resolving_to_a_private_address(self) -> None:
        with pytest.raises(UrlRefused, match=r"'intranet.example' resolves to 10.1.2.3: .*private"):
            check_url("https://intranet.example/", resolver=resolves_to("10.1.2.3"))

    def test_refuses_a_name_when_any_of_its_addresses_is_private(self) -> None:
        with pytest.raises(UrlRefused, match=r"resolves to 169\.254\.169\.254"):
            check_url("https://mixed.example/", resolver=resolves_to("93.184.216.34", "169.254.169.254"))

    def test_refuses_a_name_resolving_to_metadata_even_with_loopback_allowed(self) -> None:
        with pytest.raises(UrlRefused, match="metadata"):
            check_url("http://rebind.example/", allow_loopback=True, resolver=resolves_to("169.254.169.254"))


class TestLoopback:
    @pytest.mark.parametrize(
        "url", ["http://127.0.0.1:8099", "http://127.5.6.7/", "http://[::1]:8099/", "http://localhost:8099/"]
    )
    def test_refused_unless_allowed(self, url: str) -> None:
        with pytest.raises(UrlRefused, match="loopback"):
            check_url(url, resolver=resolves_to("127.0.0.1"))
        assert check_url(url, allow_loopback=True, resolver=resolves_to("127.0.0.1")) == url

    def test_a_name_resolving_to_loopback_is_refused_unless_allowed(self) -> None:
        with pytest.raises(UrlRefused, match=r"resolves to 127.0.0.1.*loopback"):
            check_url("http://emulator.test:8099/", resolver=resolves_to("127.0.0.1"))
        url = "http://emulator.test:8099/"
        assert check_url(url, allow_loopback=True, resolver=resolves_to("127.0.0.1")) == url


class TestAllowed:
    @pytest.mark.parametrize(
        "url",
        [
            "https://openplat-test.haier.net",
            "https://openplat-bj-aliyun.haier.net/",
            "https://openplat-bj-aliyun-stage.haier.net:8443/x",
            "https://93.184.216.34/",
        ],
    )
    def test_https_to_public_addresses(self, url: str) -> None:
        assert check_url(url, resolver=resolves_to("93.184.216.34")) == url

    def test_plain_http_to_a_public_address_is_refused(self) -> None:
        with pytest.raises(UrlRefused, match="plain http is allowed only to a loopback"):
            check_url(
                "http://openplat-test.haier.net/", allow_loopback=True, resolver=resolves_to("93.184.216.34")
            )

    def test_an_unresolvable_https_name_is_left_to_the_connection_guard(self) -> None:
        assert check_url("https://not-yet.example/", resolver=unresolvable) == "https://not-yet.example/"

    def test_an_unresolvable_http_name_is_refused(self) -> None:
        with pytest.raises(UrlRefused, match="plain http"):
            check_url("http://not-yet.example/", allow_loopback=True, resolver=unresolvable)


def test_check_address_names_the_problem() -> None:
    with pytest.raises(UrlRefused, match=r"192\.168\.0\.1 is a private address"):
        check_address("192.168.0.1")
    assert str(check_address("127.0.0.1", allow_loopback=True)) == "127.0.0.1"


NOT_GLOBAL = [
    ("::ffff:169.254.169.254", "metadata"),  # IPv4-mapped
    ("::ffff:0:a9fe:a9fe", "metadata"),  # IPv4-translated
    ("::ffff:10.0.0.1", "private"),
    ("::127.0.0.1", "loopback"),  # IPv4-compatible
    ("::169.254.169.254", "metadata"),
    ("2002:a9fe:a9fe::1", "metadata"),  # 6to4
    ("2002:c0a8:101::1", "private"),
    ("64:ff9b::a9fe:a9fe", "metadata"),  # NAT64, well-known prefix
    ("64:ff9b::7f00:1", "loopback"),
    ("64:ff9b:1::a9fe:a9fe", "not a public address"),  # NAT64, local-use prefix
    ("64:ff9b:1::808:808", "not a public address"),
    ("fec0::1", "not a public address"),  # site-local
    ("3fff::1", "not a public address"),  # documentation (RFC 9637)
    ("5f00::1", "not a public address"),  # SRv6 SIDs
    ("100:0:0:1::1", "not a public address"),  # dummy prefix
    ("2001:db8::1", "private"),  # documentation
    ("100::1", "private"),  # discard-only
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ("fd00:ec2::254", "metadata"),
    ("fe80::1", "link-local"),
    ("fc00::1", "private"),
    ("ff0e::1", "multicast"),
    ("192.0.2.1", "private"),  # IPv4 documentation
    ("198.18.0.1", "private"),  # benchmarking
    ("240.0.0.1", "private"),  # reserved
]
GLOBAL = [
    "2606:4700:4700::1111",
    "2001:4860:4860::8888",
    "2a00:1450:4001:80b::200e",
    "64:ff9b::808:808",  # DNS64 answer for a public IPv4 host (an IPv6-only network)
    "::ffff:93.184.216.34",  # a resolver's IPv4-mapped answer for a public host
    "8.8.8.8",
    "93.184.216.34",
]


class TestEveryNonGlobalAddress:
    """Refused when the URL is saved (a literal, or a name resolving to it) and when it is resolved at
    connect time (the DNS answer may change after saving), even with loopback allowed."""

    @pytest.mark.parametrize(("address", "problem"), NOT_GLOBAL)
    @pytest.mark.parametrize("allow_loopback", [False, True])
    def test_is_refused_when_saved(self, address: str, problem: str, allow_loopback: bool) -> None:
        literal = f"https://[{address}]/" if ":" in address else f"https://{address}/"
        with pytest.raises(UrlRefused, match=problem):
            check_url(literal, allow_loopback=allow_loopback)
        with pytest.raises(UrlRefused, match=rf"resolves to .*{problem}"):
            check_url(
                "https://upstream.example/", allow_loopback=allow_loopback, resolver=resolves_to(address)
            )

    @pytest.mark.parametrize(("address", "problem"), NOT_GLOBAL)
    def test_is_refused_at_connect_time(
        self, address: str, problem: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from adapters.haier.transport import _caused_by
        from adapters.outbound import guarded_adapter

        attempts: list[object] = []

        def no_connection(address: object, *args: object, **kwargs: object) -> None:
            attempts.append(address)  # the test never opens a connection beyond loopback
            raise OSError("connection attempted")

        monkeypatch.setattr(guarded_adapter.urllib3_connection, "create_connection", no_connection)
        session = guarded_adapter.guarded_session(allow_loopback=True, resolver=lambda host, port: [address])
        with pytest.raises(requests.ConnectionError, match=problem) as caught:
            session.get("https://upstream.example/", timeout=2)
        assert _caused_by(caught.value, guarded_adapter.AddressRefused) is not None
        assert attempts == []

    @pytest.mark.parametrize("address", GLOBAL)
    def test_a_global_address_passes(self, address: str) -> None:
        assert str(check_address(address)) == str(ipaddress.ip_address(address))
        literal = f"https://[{address}]/" if ":" in address else f"https://{address}/"
        assert check_url(literal) == literal
        assert check_url("https://upstream.example/", resolver=resolves_to(address))
