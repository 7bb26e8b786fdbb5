"""notify/netguard.py: which addresses are public, which URL hosts are refused without DNS, and the resolving
check (with a fake resolver: nothing here touches DNS or the network)."""

from __future__ import annotations

import socket

import httpx
import pytest

from wcnotify.notify.netguard import (
    NetGuard,
    NonPublicAddressError,
    Resolver,
    is_public_address,
    pinned,
    refused_literal,
)

NOT_PUBLIC = [
    "127.0.0.1", "127.255.255.254",  # loopback
    "10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1",  # RFC 1918
    "169.254.169.254", "169.254.0.1",  # link-local (cloud metadata)
    "100.64.0.1", "100.127.255.254",  # carrier-grade NAT (not is_private in the stdlib)
    "0.0.0.0", "0.1.2.3",  # unspecified, "this network"
    "224.0.0.1", "239.255.255.250",  # multicast (is_global is True for these on Python 3.11)
    "240.0.0.1", "255.255.255.255",  # reserved, broadcast
    "192.0.2.1", "198.51.100.1", "203.0.113.1", "198.18.0.1",  # documentation, benchmarking
    "::1", "::",  # loopback, unspecified
    "fe80::1", "fe80::1%eth0",  # link-local, with a scope id as getaddrinfo gives it
    "fc00::1", "fd12:3456::1",  # unique local
    "fec0::1",  # site-local (deprecated)
    "ff02::1",  # multicast
    "2001:db8::1",  # documentation
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::ffff:100.64.0.1",  # IPv4-mapped
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "2002:7f00:1::1", "2002:a00:1::1",  # 6to4 of 127.0.0.1, 10.0.0.1
    "::127.0.0.1",  # IPv4-compatible (deprecated)
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "100.63.255.255", "100.128.0.1", "172.32.0.1",
          "2001:4860::8888", "2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:808:808::1"]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_non_public_addresses(address: str) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses(address: str) -> None:
    assert is_public_address(address)


def test_not_an_address() -> None:
    with pytest.raises(ValueError):
        is_public_address("example.com")


@pytest.mark.parametrize(("host", "words"), [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("[::1]", "loopback"), ("169.254.169.254", "link-local"),
    ("10.1.2.3", "private"), ("100.64.0.1", "carrier-grade NAT"), ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"), ("::ffff:127.0.0.1", "embeds 127.0.0.1"),
    # the old IPv4 spellings that getaddrinfo and browsers accept
    ("2130706433", "loopback"), ("0x7f000001", "loopback"), ("127.1", "loopback"), ("0177.0.0.1", "loopback"),
    ("localhost", "this server"), ("LocalHost.", "this server"), ("api.localhost", "this server"),
])
def test_refused_literals(host: str, words: str) -> None:
    reason = refused_literal(host)
    assert reason is not None and words in reason, reason


@pytest.mark.parametrize("host", ["8.8.8.8", "2001:4860::8888", "example.com", "hooks.example.com",
                                  "localhost.example.com", "deadbeef.cafe", "x1.example"])
def test_allowed_without_dns(host: str) -> None:
    assert refused_literal(host) is None


def resolver(table: dict[str, list[str]]) -> Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]
    return resolve


async def test_the_check_resolves_and_refuses_any_non_public_address() -> None:
    guard = NetGuard(resolver=resolver({
        "public.test": ["8.8.8.8", "2001:4860::8888"], "inside.test": ["127.0.0.1"],
        "mixed.test": ["8.8.8.8", "10.0.0.7"], "metadata.test": ["fd00:ec2::254"],
    }))
    await guard.check("public.test", 443)
    await guard.check("8.8.8.8", 80)  # a public literal needs no lookup
    for host, words in [("inside.test", "resolves to 127.0.0.1"), ("mixed.test", "resolves to 10.0.0.7"),
                        ("metadata.test", "resolves to fd00:ec2::254"), ("169.254.169.254", "link-local"),
                        ("localhost", "this server")]:
        with pytest.raises(NonPublicAddressError) as refused:
            await guard.check(host, 80)
        assert words in str(refused.value) and "--allow-private-urls" in str(refused.value)
    with pytest.raises(OSError):
        await guard.check("unknown.test", 80)
    # allowed: no lookup at all
    lenient = NetGuard(allow_private=True, resolver=resolver({}))
    for host in ("inside.test", "127.0.0.1", "localhost", "unknown.test"):
        await lenient.check(host, 80)


def test_pinned_requests_name_the_checked_address_and_keep_the_host() -> None:
    url = httpx.URL("https://hooks.example.com:8443/notify?x=1")
    target, headers, extensions = pinned(url, "2001:db8::7")
    assert str(target) == "https://[2001:db8::7]:8443/notify?x=1"
    # the name stays the Host and the TLS server name; a connection verified for it is used for it alone
    assert headers == {"host": "hooks.example.com:8443", "connection": "close"}
    assert extensions == {"sni_hostname": "hooks.example.com"}
    target, headers, extensions = pinned(httpx.URL("http://hooks.example.com/h"), "93.184.216.34")
    assert (str(target), headers, extensions) == ("http://93.184.216.34/h", {"host": "hooks.example.com"}, {})
    assert pinned(url, None) == (url, {}, {})  # private URLs allowed, or an IP literal: as it is
