"""The outbound policy: which addresses Http/Https, StorageQueue and token calls may reach.

``TAKT_ACTION_DENY_NETWORKS`` (default: link-local and the cloud metadata addresses) is
never reached; when ``TAKT_ACTION_ALLOW_NETWORKS`` is set, nothing outside it is either.
Two places apply it:

- at write time, a URI whose host is a *literal* address the policy refuses is a 400
  naming the field (:meth:`NetworkPolicy.check_uri`); a name cannot be judged then, since
  what it resolves to may change;
- at connect time, a worker resolves the name once, checks every address it got, and
  connects to a checked one (:mod:`workers.network`), so a DNS answer that changes
  between the check and the connection (rebinding) reaches nothing it should not.

IPv4-mapped IPv6 addresses (``::ffff:169.254.169.254``) are judged as the IPv4 address
they carry.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from scheduler.domain.bounds import split_authority
from scheduler.errors import OutboundRefused
from scheduler.settings import DEFAULT_DENY_NETWORKS, Network, TaktSettings

__all__ = ["Address", "NetworkPolicy", "literal_address"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_DENY = "TAKT_ACTION_DENY_NETWORKS"
_ALLOW = "TAKT_ACTION_ALLOW_NETWORKS"


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    """Denied networks, and (if any) the only networks allowed."""

    deny: tuple[Network, ...] = ()
    allow: tuple[Network, ...] = ()

    @classmethod
    def from_settings(cls, settings: TaktSettings) -> NetworkPolicy:
        return cls(settings.deny_networks, settings.allow_networks)

    @classmethod
    def default(cls) -> NetworkPolicy:
        """The policy of default settings: link-local and cloud metadata denied."""
        return cls(tuple(ipaddress.ip_network(cidr) for cidr in DEFAULT_DENY_NETWORKS.split(",")))

    def refusal(self, address: Address) -> str | None:
        """Why ``address`` may not be reached, naming the setting; None when it may."""
        judged = _unmapped(address)
        for network in self.deny:
            if judged.version == network.version and judged in network:
                return f"Refused by {_DENY}: {address} is in {network}"
        if self.allow and not any(
            judged.version == network.version and judged in network for network in self.allow
        ):
            allowed = ", ".join(str(network) for network in self.allow)
            return f"Refused by {_ALLOW}: {address} is outside {allowed}"
        return None

    def check_address(self, address: Address) -> None:
        """Raise :class:`OutboundRefused` if ``address`` may not be reached."""
        if reason := self.refusal(address):
            raise OutboundRefused(reason)

    def check_uri(self, uri: str, field: str) -> None:
        """Write time: refuse a URI whose host is a literal address the policy refuses."""
        if reason := self._uri_refusal(uri):
            raise OutboundRefused(f"{field}: {reason}", field=field)

    def _uri_refusal(self, uri: str) -> str | None:
        _, authority = split_authority(uri)
        if authority is None:
            address = literal_address(uri)
            return None if address is None else self.refusal(address)
        return _authority_refusal(self, authority)


@lru_cache(maxsize=4096)
def _authority_refusal(policy: NetworkPolicy, authority: str) -> str | None:
    """Cached by authority: jobs differ in their paths far more than in their hosts."""
    address = literal_address(f"http://{authority}/")
    return None if address is None else policy.refusal(address)


def literal_address(uri: str) -> Address | None:
    """The address a URI's host names literally (any form the resolver takes as one, such
    as ``2852039166`` or ``0xa9.0xfe.0xa9.0xfe``), or None for a name."""
    try:
        host = urlsplit(uri).hostname
    except ValueError:
        return None
    if not host:
        return None
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        # inet_aton takes the legacy forms (decimal, octal, hex, fewer than four parts)
        # that getaddrinfo resolves without asking DNS.
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _unmapped(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
