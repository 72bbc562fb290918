"""Authentication without HTTP: API-key signatures, login sessions, and their caches.

The web layer hands over decoded parameters and cookie values; this module answers with a Caller
or an ApiError. Request signatures follow spec/api.md §2.2 (`cloudd.web.signing`, imported for
its pure functions).

Versions and expiry: `signatureVersion` is either absent or exactly `3`; any other value, an empty
one included, is refused with 401 (no client sends one: `cs` and cmk send `3`, libcloud and
cloudstack-go nothing). An `expires` is enforced whenever it is present, whatever the version: it
must parse, must not have passed and may lie no further ahead than
`api.request.expires.max.seconds`. Version 3 requires an `expires`. Requests with neither are
accepted, counted and logged unless `api.signature.version3.required` or
`enforce.post.requests.and.timestamps` is set, which refuse every request that is not version 3.
"""

from __future__ import annotations

import base64
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from cloudd.api.context import Caller
from cloudd.api.errors import ApiError, throttled, unauthorized
from cloudd.api.ratelimit import FixedWindowLimiter
from cloudd.api.service import ApiService, EventInfo
from cloudd.db.accounts import Credentials
from cloudd.db.base import NotFound
from cloudd.util import passwords
from cloudd.util.passwords import check_password, new_api_key, new_session_key
from cloudd.web.signing import parse_expires, verify_signature
from cloudd.web.wire import param_ci

if TYPE_CHECKING:
    from cloudd.db.domains import Domain

SESSION_FAILED = "unable to verify user credentials"
UNEXPIRING_REPORT_SECONDS = 60.0


@dataclass(frozen=True)
class Login:
    session_id: str
    session_key: str
    caller: Caller
    timeout: int


class Authenticator:
    log = Logger()

    def __init__(self, api: ApiService, reactor: object, threadpool: object, cache_ttl: float = 5.0) -> None:
        self.api = api
        self.reactor = reactor
        self.threadpool = threadpool  # where password hashing runs
        self.cache_ttl = cache_ttl
        self._keys: OrderedDict[str, tuple[float, Credentials]] = OrderedDict()
        self.login_limiter = FixedWindowLimiter(api.clock)
        self.unexpiring_accepted = 0
        # per user: when requests without an expiry were last reported, and how many came since
        self._unexpiring: dict[str, tuple[float, int]] = {}
        # checked when the user does not exist: same scheme and rounds, matches no password
        salt = base64.b64encode(os.urandom(16)).decode()
        self._decoy = f"pbkdf2_sha256${passwords.ITERATIONS}${salt}${base64.b64encode(bytes(32)).decode()}"
        api.identity_listeners.append(self.clear_cache)

    def clear_cache(self) -> None:
        self._keys.clear()

    async def _credentials(self, api_key: str) -> Credentials | None:
        now = self.api.clock.seconds()
        hit = self._keys.get(api_key)
        if hit is not None and now - hit[0] < self.cache_ttl:
            return hit[1]
        try:
            creds = await self.api.db.accounts.credentials_by_api_key(api_key)
        except NotFound:
            self._keys.pop(api_key, None)
            return None
        self._keys[api_key] = (now, creds)
        while len(self._keys) > 10000:
            self._keys.popitem(last=False)
        return creds

    @staticmethod
    def usable(creds: Credentials) -> bool:
        return creds.user.state == "enabled" and creds.user.account.state == "enabled"

    async def verify_signed(self, params: dict[str, str]) -> Caller:
        """The caller of a signed request, or 401."""
        api_key = param_ci(params, "apikey")
        signature = param_ci(params, "signature")
        if not api_key or not signature:
            raise unauthorized()
        settings = self.api.settings
        version = param_ci(params, "signatureversion")
        expires = param_ci(params, "expires")
        now = self.api.clock.seconds()
        if version is not None and version != "3":
            # "3" is the only version there is; an empty value, "4" or "3.0" is not a way around the
            # expiry rules below, nor a request we know how to check.
            raise unauthorized()
        if version is None and (settings.bool("api.signature.version3.required")
                                or settings.bool("enforce.post.requests.and.timestamps")):
            raise unauthorized()
        if expires is not None:
            # Enforced whatever the version: a signed expiry is a limit the client asked for
            # (CloudStack ignores it without signatureVersion=3, so a captured request lives for ever).
            when = parse_expires(expires)
            if when is None or when < now or when - now > settings.int("api.request.expires.max.seconds"):
                raise unauthorized()
        elif version == "3":
            raise unauthorized()  # version 3 without an expiry
        creds = await self._credentials(api_key)
        if creds is None or creds.secret_key is None or not self.usable(creds):
            raise unauthorized()
        if not settings.bool("api.key.access"):
            raise unauthorized()
        if not verify_signature(params, creds.secret_key, signature):
            raise unauthorized()
        if expires is None:
            self._count_unexpiring(creds.user.uuid, now)
        return Caller(creds.user)

    def _count_unexpiring(self, user: str, now: float) -> None:
        """Count a request signed without an expiry; report each user's at most once a minute."""
        self.unexpiring_accepted += 1
        last, since = self._unexpiring.get(user, (-UNEXPIRING_REPORT_SECONDS, 0))
        since += 1
        if now - last < UNEXPIRING_REPORT_SECONDS:
            self._unexpiring[user] = (last, since)
            return
        self._unexpiring[user] = (now, 0)
        if len(self._unexpiring) > 10000:
            self._unexpiring.clear()
        self.log.info("accepted {count} signed request(s) without an expiry from user {user} ({total} in all); "
                      "set api.signature.version3.required to refuse them",
                      count=since, user=user, total=self.unexpiring_accepted)

    # --- sessions -------------------------------------------------------------------------------

    async def login(self, username: str, password: str, domain: Domain, client_address: str) -> Login:
        settings = self.api.settings
        window = settings.int("api.login.failures.window")
        limit = settings.int("api.login.failures.max")
        user_key = f"{domain.id}/{username}"
        wait = max(self.login_limiter.blocked("u:" + user_key, limit, window),
                   self.login_limiter.blocked("a:" + client_address, limit * 10, window))
        if wait:
            raise throttled(wait)
        failure = ApiError(531, f"Failed to authenticate user {username} in domain {domain.uuid}; please "
                                "provide valid credentials", None)
        try:
            creds = await self.api.db.accounts.credentials_for_login(username, domain.id)
        except NotFound:
            creds = None
        # An unknown user costs the same hashing as a known one, so timing does not tell them apart.
        stored = creds.password_hash if creds is not None else self._decoy
        ok = await deferToThreadPool(self.reactor, self.threadpool,  # type: ignore[arg-type]
                                     check_password, password or "-", stored)
        ok = ok and creds is not None and bool(password)
        if not ok or creds is None or not self.usable(creds):
            self.login_limiter.count("u:" + user_key, window)
            self.login_limiter.count("a:" + client_address, window)
            raise failure
        self.login_limiter.clear("u:" + user_key)
        timeout = settings.int("session.timeout")
        session_id = new_api_key()[:40]
        key = new_session_key()
        await self.api.db.sessions.create(session_id, key, creds.user.id, timeout)
        caller = Caller(creds.user)
        await self.api.record_event(caller, "USER.LOGIN", "Completed", EventInfo(
            f"user has logged in from IP Address {client_address}", "User", creds.user.uuid, creds.user.username))
        return Login(session_id, key, caller, timeout)

    async def session_caller(self, session_id: str, key_param: str | None, key_cookie: str | None) -> Caller:
        mode = self.api.settings.str("api.sessionkey.check.locations")
        session = await self.api.db.sessions.touch(session_id)
        if session is None:
            raise unauthorized(SESSION_FAILED)
        supplied = [k for k in (key_param, key_cookie) if k is not None]
        missing = ((mode == "CookieAndParameter" and (key_param is None or key_cookie is None))
                   or (mode == "ParameterOnly" and key_param is None))
        if missing or not supplied or any(not self.api.db.sessions.key_matches(session, k) for k in supplied):
            # As CloudStack does (spec §2.1): a failed session-key check ends the session, so a guessed
            # key costs the session instead of allowing another try.
            await self.api.db.sessions.delete(session_id)
            raise unauthorized(SESSION_FAILED)
        try:
            user = await self.api.db.accounts.get_user(session.user_id)
        except NotFound:
            raise unauthorized(SESSION_FAILED) from None
        if user.state != "enabled" or user.account.state != "enabled":
            await self.api.db.sessions.delete(session_id)
            raise unauthorized(SESSION_FAILED)
        return Caller(user)

    async def logout(self, session_id: str | None) -> None:
        if not session_id:
            return
        session = await self.api.db.sessions.touch(session_id)
        await self.api.db.sessions.delete(session_id)
        if session is not None:
            try:
                user = await self.api.db.accounts.get_user(session.user_id)
            except NotFound:
                return
            await self.api.record_event(Caller(user), "USER.LOGOUT", "Completed", EventInfo(
                "user has logged out", "User", user.uuid, user.username))
