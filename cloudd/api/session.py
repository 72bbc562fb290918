"""login and logout: declared here for listApis; the web layer runs them (they are authenticators)."""

from __future__ import annotations

from cloudd.api.context import CallContext
from cloudd.api.fields import doc
from cloudd.api.registry import ALL, Field, Param, command
from cloudd.api.results import Result

P = Param
F = Field
LOGIN = doc("login", F("username", "Username"), F("userid", "User ID"), F("domainid", "Domain ID that the user "
            "belongs to"), F("timeout", "the time period before the session has expired", "integer"),
            F("account", "the account name the user belongs to"), F("firstname", "first name of the user"),
            F("lastname", "last name of the user"), F("type", "the account type (admin, domain-admin, "
            "read-only-admin, user)"), F("timezone", "user time zone"), F("timezoneoffset", "user time zoneoffset"),
            F("registered", "Is user registered"), F("sessionkey", "Session key that can be passed in subsequent "
            "Query command calls"), F("is2faenabled", "Is two factor authentication enabled"),
            F("is2faverified", "Is two factor authentication verified"))


async def _web_only(ctx: CallContext) -> Result:
    raise AssertionError("login and logout are handled by the web layer")


login = command("login", description="Logs a user into the CloudStack. A successful login attempt will generate a "
                "JSESSIONID cookie value that can be passed in subsequent Query command calls until the \"logout\" "
                "command has been issued or the session has expired.", roles=ALL, response=LOGIN,
                authenticator=True, post_only=True, event="USER.LOGIN",
                params=[P("username", description="Username", required=True),
                        P("password", description="Hashed password (Default is MD5). If you wish to use any other "
                          "hashing algorithm, you would need to write a custom authentication adapter See Docs "
                          "section.", required=True, secret=True),
                        P("domain", description="Path of the domain that the user belongs to. Example: "
                          "domain=/com/cloud/internal. If no domain is passed in, the ROOT (/) domain is assumed."),
                        P("domainId", "long", "The id of the domain that the user belongs to. If both domain and "
                          "domainId are passed in, \"domainId\" parameter takes precedence.")])(_web_only)

logout = command("logout", description="Logs out the user", roles=ALL, authenticator=True, event="USER.LOGOUT",
                 response=doc("logout", F("description", "Response description")))(_web_only)
