"""Which hosts the notify server may connect to on a dapp's behalf (webhooks, the console's did.json check).

A dapp chooses those URLs, and the outcome of each request (a status code, an error text) is shown back to
it; a server that connected anywhere would let any holder of a project secret probe the network it runs in
(``http://127.0.0.1:6379``, ``http://169.254.169.254/`` cloud metadata, ``10.x`` hosts). So, unless the
operator allows private URLs (``NotifyConfig.allow_private_urls``, ``--allow-private-urls``; ``wcnotify up``
does, for dapps and receivers on the developer's own machine), only public addresses are reached:

* :func:`is_public_address` is the rule for one address: not loopback, private (RFC 1918, ULA ``fc00::/7``),
  link-local, multicast, unspecified, reserved, shared (carrier-grade NAT ``100.64.0.0/10``), documentation or
  benchmarking ranges; an IPv6 address that embeds an IPv4 one (IPv4-mapped ``::ffff:a.b.c.d``, NAT64
  ``64:ff9b::/96``, 6to4, Teredo) is judged by that IPv4 address too.
* :func:`refused_literal` is the check at registration, without DNS: a host that is an IP literal
  which is not public, or ``localhost`` / ``*.localhost``.
* :meth:`NetGuard.check` resolves a host (``loop.getaddrinfo``, injectable for tests) and refuses it when
  **any** address is not public, so a DNS name pointing inside is refused before any connection is made.

* :func:`pinned` turns a URL and the address the check approved into the request that connects to exactly
  that address: the URL names the address, the ``Host`` header the original host, and for https the TLS
  server name (SNI, and the name the certificate is verified against) is the original host too. So a name
  whose DNS answer changes between the check and the connection (DNS rebinding, a TTL of 0 under an
  attacker's control) cannot lead the request anywhere the check did not see.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = [
    "OPTION_HINT",
    "NetGuard",
    "NonPublicAddressError",
    "Resolver",
    "is_public_address",
    "pinned",
    "refused_literal",
    "system_resolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]  # (host, port) -> the addresses it resolves to

OPTION_HINT = ("only public addresses are allowed unless the server runs with --allow-private-urls "
               "(WCNOTIFY_ALLOW_PRIVATE_URLS)")

_SHARED = ipaddress.IPv4Network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598): is_private is False for it
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # the well-known NAT64 prefix: is_global, but embeds an IPv4
_LEGACY_IPV4 = re.compile(r"[0-9a-fx.]+", re.IGNORECASE)  # 2130706433, 0x7f.1, 127.1: inet_aton spellings


class NonPublicAddressError(Exception):
    """A host that is, or resolves to, an address this server does not connect to; the text says why."""


def _address(value: str | IPAddress) -> IPAddress:
    if isinstance(value, str):
        return ipaddress.ip_address(value.partition("%")[0])  # an IPv6 scope id (fe80::1%eth0) is dropped
    return value


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's address
    return None


def is_public_address(value: str | IPAddress) -> bool:
    """Whether the server may connect to this address for a dapp (ValueError when it is not an address)."""
    address = _address(value)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # how a dual-stack socket spells an IPv4 address: judged as one
            return is_public_address(address.ipv4_mapped)
        inner = _embedded_ipv4(address)
        if inner is not None and not is_public_address(inner):
            return False
    # is_global alone is not enough on every Python: 224.0.0.1 is "global" on 3.11, for instance
    if (not address.is_global or address.is_private or address.is_loopback or address.is_link_local
            or address.is_multicast or address.is_unspecified or address.is_reserved):
        return False
    if isinstance(address, ipaddress.IPv6Address):
        return not address.is_site_local
    return address not in _SHARED


def _literal(host: str) -> IPAddress | None:
    """The address a host names by itself (no DNS), including the old IPv4 spellings resolvers accept."""
    try:
        return _address(host.strip("[]"))
    except ValueError:
        pass
    if _LEGACY_IPV4.fullmatch(host) and any(c.isdigit() for c in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def refused_literal(host: str) -> str | None:
    """Why a URL's host is refused without looking it up (an IP literal that is not public, or ``localhost``
    and its subdomains); None when it may be registered (a name is checked again at each connection)."""
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return f"{host} is this server itself"
    address = _literal(name)
    if address is not None and not is_public_address(address):
        return f"{host} is not a public address ({_kind(address)})"
    return None


def _kind(address: IPAddress) -> str:
    inner = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
    if inner is not None and not is_public_address(inner):
        return f"it embeds {inner}: {_kind(inner)}"
    for name, test in (("loopback", address.is_loopback), ("unspecified", address.is_unspecified),
                       ("link-local", address.is_link_local), ("multicast", address.is_multicast)):
        if test:
            return name
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED:
        return "carrier-grade NAT"
    return "private or reserved"


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, as the operating system answers (``socket.gaierror`` if none)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass
class NetGuard:
    """Checks a host before the server connects to it for a dapp; ``allow_private`` turns the check off.

    ``resolver`` replaces DNS in tests (a name that resolves to 127.0.0.1 without touching /etc/hosts)."""

    allow_private: bool = False
    resolver: Resolver = system_resolver
    is_public: Callable[[IPAddress], bool] = is_public_address  # the rule for resolved addresses (tests)

    async def check(self, host: str, port: int) -> str | None:
        """The address to connect to for ``host`` (see :func:`pinned`), or None to connect to the host as it
        is (private URLs allowed, or an IP literal); raise :class:`NonPublicAddressError` when the host or any
        address it resolves to is not public (``OSError`` when it does not resolve). Makes no connection."""
        if self.allow_private:
            return None
        reason = refused_literal(host)
        if reason is not None:
            raise NonPublicAddressError(f"{reason}; {OPTION_HINT}")
        if _literal(host.lower()) is not None:
            return None
        addresses = await self.resolver(host, port)
        if not addresses:
            raise OSError(f"{host} resolves to no address")
        for text in addresses:
            address = _address(text)
            if not self.is_public(address):
                raise NonPublicAddressError(f"{host} resolves to {address}, not a public address "
                                            f"({_kind(address)}); {OPTION_HINT}")
        return addresses[0]


def pinned(url: httpx.URL, address: str | None) -> tuple[httpx.URL, dict[str, str], dict[str, Any]]:
    """``(url, headers, extensions)`` of a request to ``url`` that connects to ``address`` (from
    :meth:`NetGuard.check`) and to nothing else, with the original host in ``Host`` and, for https, as the
    TLS server name; ``address`` None: the URL as it is."""
    if address is None:
        return url, {}, {}
    headers = {"host": url.netloc.decode("ascii")}
    extensions: dict[str, Any] = {}
    if url.scheme == "https":
        extensions["sni_hostname"] = url.host
        # the client pools connections by address: a TLS connection verified for one name must not carry a
        # request for another name that resolved to the same address, so a pinned https request is not reused
        headers["connection"] = "close"
    return url.copy_with(host=address), headers, extensions
