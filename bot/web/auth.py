"""Who is asking: credentials for ``/api`` and ``/sdapi`` (A1111-API.md §2).

* Bound to a loopback address (``127.0.0.0/8``, ``::1``, ``localhost``), everything is open and
  every request is an admin's: it is the local user's own machine.
* Bound anywhere else, every ``/api`` and ``/sdapi`` route needs credentials:

  - HTTP basic against the ``user:pass`` pairs in ``$EASEL_API_AUTH`` (comma-separated, like
    A1111's ``--api-auth``), or ``Authorization: Bearer`` with ``$EASEL_API_TOKEN``;
  - admin routes need ``Authorization: Bearer`` with ``$EASEL_ADMIN_TOKEN`` (which also works
    everywhere else, as the user "admin").

  Secrets are compared with :func:`hmac.compare_digest` and never logged. Starting on a
  non-loopback address with no credentials configured at all is a :class:`ConfigError`.

* Defence in depth for the open case: a request whose peer is not a loopback address (a
  mistaken bind, a port forward) gets 403 on ``/api`` and ``/sdapi`` instead of admin rights.

The variable names come from ``[web]`` in the config; the values are read once, at start-up.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import os
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from bot.config import WebConfig
from generation.errors import ConfigError, EaselError, PermissionDenied

LOCAL_USER = "local"
TOKEN_USER = "token"
ADMIN_USER = "admin"
METRICS_PATH = "/metrics"  # Prometheus: an admin route (it counts every community's jobs)
PROTECTED_PREFIXES = ("/api/", "/sdapi/", METRICS_PATH)
ADMIN_PREFIX = "/api/admin/"


class Unauthorized(EaselError):
    """Missing or wrong credentials (401). ``detail`` uses A1111's wording (§2).

    ``challenge`` asks a browser for basic credentials (WWW-Authenticate); it is off where a
    login box would only get in the way: admin routes and rejected bearer tokens.
    """

    def __init__(self, message: str, detail: str, *, challenge: bool = True) -> None:
        super().__init__(message)
        self.detail = detail
        self.challenge = challenge


@dataclass(frozen=True)
class Principal:
    """The caller: ``name`` is the user id Easel records; ``authenticated`` is False on loopback."""

    name: str
    is_admin: bool
    authenticated: bool


LOCAL = Principal(LOCAL_USER, is_admin=True, authenticated=False)
PRINCIPAL_KEY = web.RequestKey("easel_principal", Principal)


def is_loopback(host: str) -> bool:
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 from a dual-stack socket
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def _remote_is_local(remote: str | None) -> bool:
    """No peer address (a Unix socket) or a loopback one."""
    return remote is None or is_loopback(remote)


@dataclass(frozen=True)
class Credentials:
    """Secrets read from the environment (``repr`` never shows them)."""

    basic: tuple[tuple[str, str], ...] = ()
    token: str | None = None
    admin_token: str | None = None

    def __repr__(self) -> str:
        return (
            f"Credentials(basic users={[user for user, _ in self.basic]}, "
            f"token={'set' if self.token else 'unset'}, "
            f"admin_token={'set' if self.admin_token else 'unset'})"
        )

    @property
    def any(self) -> bool:
        return bool(self.basic or self.token or self.admin_token)

    @classmethod
    def from_env(cls, config: WebConfig) -> Credentials:
        raw = os.environ.get(config.api_auth_env, "")
        pairs: list[tuple[str, str]] = []
        for item in raw.split(","):
            if not item.strip():
                continue
            user, sep, password = item.partition(":")
            if not sep or not user or not password:
                raise ConfigError(
                    f"${config.api_auth_env}: each entry must be user:password "
                    "(comma-separated, like A1111's --api-auth)."
                )
            pairs.append((user, password))
        token = os.environ.get(config.api_token_env) or None
        admin = os.environ.get(config.admin_token_env) or None
        return cls(tuple(pairs), token, admin)


@dataclass(frozen=True)
class AuthPolicy:
    open: bool  # bound to loopback: no credentials needed, everyone is admin
    credentials: Credentials

    @classmethod
    def from_config(cls, config: WebConfig) -> AuthPolicy:
        """The policy for the configured host; ConfigError when it would be unprotected."""
        if is_loopback(config.host):
            return cls(open=True, credentials=Credentials())
        credentials = Credentials.from_env(config)
        if not credentials.any:
            raise ConfigError(
                f"web.host is {config.host!r}, which is reachable from other machines, but no "
                f"API credentials are set: set ${config.api_auth_env} (user:pass,...), "
                f"${config.api_token_env} or ${config.admin_token_env}, or use "
                'host = "127.0.0.1".'
            )
        return cls(open=False, credentials=credentials)

    def identify(self, header: str | None) -> Principal:
        """The principal for an ``Authorization`` header, or raise :class:`Unauthorized`."""
        if self.open:
            return LOCAL
        if not header:
            raise Unauthorized("Credentials are required.", "Not authenticated")
        scheme, _, value = header.strip().partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "bearer" and value:
            return self._bearer(value)
        if scheme == "basic":
            return self._basic(value)
        raise Unauthorized("Use HTTP basic credentials or a bearer token.", "Not authenticated")

    def _bearer(self, token: str) -> Principal:
        given = token.encode()
        admin = self.credentials.admin_token
        if admin and hmac.compare_digest(given, admin.encode()):
            return Principal(ADMIN_USER, is_admin=True, authenticated=True)
        api = self.credentials.token
        if api and hmac.compare_digest(given, api.encode()):
            return Principal(TOKEN_USER, is_admin=False, authenticated=True)
        raise Unauthorized(
            "The bearer token is not valid.", "Incorrect username or password", challenge=False
        )

    def _basic(self, value: str) -> Principal:
        try:
            decoded = base64.b64decode(value, validate=True).decode("ascii")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            decoded = ""
        user, sep, password = decoded.partition(":")
        if not sep:
            raise Unauthorized(
                "The basic credentials are malformed.", "Invalid authentication credentials"
            )
        matched: str | None = None
        for known_user, known_password in self.credentials.basic:
            # Compare every pair fully, so timing says nothing about which part was wrong.
            user_ok = hmac.compare_digest(user.encode(), known_user.encode())
            password_ok = hmac.compare_digest(password.encode(), known_password.encode())
            if user_ok and password_ok:
                matched = known_user
        if matched is None:
            raise Unauthorized("Wrong user name or password.", "Incorrect username or password")
        return Principal(matched, is_admin=False, authenticated=True)


def principal(request: web.Request) -> Principal:
    found: Principal = request.get(PRINCIPAL_KEY, LOCAL)
    return found


def auth_middleware(policy: AuthPolicy) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        # Unknown paths and wrong methods answer 404/405 whatever the credentials (§2); the
        # matched route (not the raw path) decides what is protected.
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else ""
        local_peer = _remote_is_local(request.remote)
        if request.match_info.http_exception is None and route.startswith(PROTECTED_PREFIXES):
            admin_route = route.startswith(ADMIN_PREFIX) or route == METRICS_PATH
            if policy.open and not local_peer:
                raise PermissionDenied(
                    "This Easel answers only its own machine (web.host is a loopback address). "
                    "To use it from elsewhere, set web.host and API credentials "
                    "(see the README's web section)."
                )
            try:
                who = policy.identify(request.headers.get("Authorization"))
            except Unauthorized as error:
                error.challenge = error.challenge and not admin_route  # the page asks instead
                raise
            if admin_route and not who.is_admin:
                if not who.authenticated:
                    raise Unauthorized(
                        "The admin token is required.", "Not authenticated", challenge=False
                    )
                raise PermissionDenied(
                    "Admin routes need the admin token (Authorization: Bearer ...)."
                )
            request[PRINCIPAL_KEY] = who
        else:
            request[PRINCIPAL_KEY] = LOCAL if policy.open and local_peer else _anonymous()
        return await handler(request)

    return middleware


def _anonymous() -> Principal:
    return Principal("anonymous", is_admin=False, authenticated=False)
