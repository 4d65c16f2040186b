"""SSRF guard for webhook URLs: the receiver must be a public address unless a setting allows otherwise.

Checked when a subscription is saved (so the owner sees the error) and again right before every send, on the
addresses the name resolves to at that moment; the request then connects to the vetted address itself, so a DNS
answer that changes between the check and the connection (DNS rebinding) cannot redirect it.
"""

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from itsm.errors import ValidationFailed

Resolver = Callable[..., Sequence[Any]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeUrl(ValidationFailed):
    code = "url_refused"

    def __init__(self, reason: str) -> None:
        super().__init__(reason, fields={"url": [reason]})


@dataclass(frozen=True)
class Target:
    """Where to connect: the vetted `ip`, and the `host` to name in the Host header and in TLS (SNI, certificate)."""

    scheme: str
    host: str
    port: int
    path: str
    ip: str

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(item, strict=False) for item in settings.WEBHOOK_ALLOWED_NETWORKS]


def refusal_reason(address: IPAddress) -> str | None:
    """Why `address` may not receive webhooks, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS or any(address in network for network in _allowed_networks()):
        return None
    checks = (
        ("is_loopback", "a loopback"),
        ("is_link_local", "a link-local"),
        ("is_multicast", "a multicast"),
        ("is_unspecified", "an unspecified"),
        ("is_private", "a private"),
        ("is_reserved", "a reserved"),
    )
    for attribute, label in checks:
        if getattr(address, attribute):
            return f"The address {address} is {label} address; webhooks go to public addresses only."
    if not address.is_global:
        return f"The address {address} is not a public address; webhooks go to public addresses only."
    return None


def vet_url(url: str, *, resolve: Resolver = socket.getaddrinfo) -> Target:
    """Parse and resolve `url`; refuse it unless every address it resolves to is allowed. Returns the first one."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl("This is not a valid URL.") from exc
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl("Use an http:// or https:// URL.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("Credentials in the URL are not allowed; the signature authenticates the desk.")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeUrl("The URL has no host.")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeUrl(f"The host {host} does not resolve.") from exc
    addresses: list[IPAddress] = []
    for info in infos:
        try:
            addresses.append(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))
        except ValueError:
            continue
    if not addresses:
        raise UnsafeUrl(f"The host {host} does not resolve.")
    for address in addresses:
        reason = refusal_reason(address)
        if reason is not None:
            raise UnsafeUrl(reason)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(scheme=parts.scheme, host=host, port=port, path=path, ip=str(addresses[0]))
