"""Outbound webhooks reach only public internet addresses (no SSRF into the shop's network).

A shop registers any URL it likes; without this guard the delivery worker would POST, from
inside our network, to ``http://127.0.0.1:5432``, ``http://169.254.169.254/`` (a cloud's
metadata service) or a neighbour's private address. Two checks:

- at registration, a host that is an IP literal or ``localhost`` must be public (``url_problem``);
- at delivery, every address the host name resolves to is checked again and the connection
  is made to a checked address, so a name that resolves (or is re-pointed) to a private
  address is refused too (``open_guarded``). Redirects are not followed: a 3xx is a failed
  attempt, as a redirect could lead anywhere.

``QUARTERHOUR_WEBHOOK_ALLOW_PRIVATE_URLS=true`` lifts both, for a receiver on the same machine
or network (development, the tests).
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import urllib.request
from typing import Any
from urllib.parse import urlsplit

LOCAL_NAMES = ("localhost", "localhost.localdomain")


class NotPublicError(OSError):
    """The endpoint's host is, or resolves to, an address that is not public."""


def address_problem(address: str) -> str | None:
    """Why ``address`` (an IP literal) is not a public internet address, or None."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "is a loopback address"
    if ip.is_link_local:
        return "is a link-local address"
    if ip.is_multicast:
        return "is a multicast address"
    if ip.is_unspecified:
        return "is an unspecified address"
    if not ip.is_global:
        return "is a private or reserved address"
    return None


def url_problem(url: str) -> str | None:
    """Why ``url``'s host is plainly not public (an IP literal or ``localhost``), or None.

    Host names are resolved at delivery, not here: the answer may change, and a name that
    does not resolve yet is not an error.
    """
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host in LOCAL_NAMES or host.endswith(".localhost"):
        return f"host {host!r} is this machine"
    try:
        problem = address_problem(host)
    except ValueError:
        return None  # a name, not an address
    return f"host {host} {problem}" if problem else None


def _public_connection(host: str, port: int, timeout: Any) -> socket.socket:
    """A socket connected to the first public address of ``host`` that answers."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    public = [info for info in infos if address_problem(str(info[4][0])) is None]
    if not public:
        first = str(infos[0][4][0]) if infos else host
        problem = address_problem(first) if infos else "does not resolve"
        raise NotPublicError(f"not a public host: {host} ({first} {problem})")
    last_error: OSError | None = None
    for family, kind, protocol, _, address in public:
        sock = socket.socket(family, kind, protocol)
        try:
            if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:  # type: ignore[attr-defined]
                sock.settimeout(timeout)
            sock.connect(address)
            return sock
        except OSError as error:
            sock.close()
            last_error = error
    assert last_error is not None
    raise last_error


class _GuardedHTTPConnection(http.client.HTTPConnection):
    def connect(self) -> None:
        self.sock = _public_connection(self.host, self.port, self.timeout)


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    def connect(self) -> None:
        sock = _public_connection(self.host, self.port, self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


class _GuardedHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_GuardedHTTPConnection, req)


class _GuardedHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_GuardedHTTPSConnection, req)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx comes back as an HTTPError: a failed attempt


_GUARDED = urllib.request.build_opener(
    urllib.request.ProxyHandler({}), _GuardedHTTPHandler, _GuardedHTTPSHandler, _NoRedirect
)
_OPEN = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)


def open_guarded(
    request: urllib.request.Request, timeout_s: float, *, allow_private: bool
) -> http.client.HTTPResponse:
    """``urlopen`` without redirects or environment proxies, to public addresses only unless
    ``allow_private``; raises ``NotPublicError`` (an ``OSError``) for a refused host."""
    opener = _OPEN if allow_private else _GUARDED
    response: http.client.HTTPResponse = opener.open(request, timeout=timeout_s)
    return response
