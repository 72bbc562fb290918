"""Response field documentation shared by several commands (listApis `response`)."""

from __future__ import annotations

from cloudd.api.registry import Field, ResponseDoc

F = Field


def doc(obj: str, *fields: Field) -> ResponseDoc:
    return ResponseDoc(obj, tuple(fields))


DOMAIN_FIELDS = (
    F("id", "the ID of the domain"), F("name", "the name of the domain"),
    F("level", "the level of the domain", "integer"), F("parentdomainid", "the domain ID of the parent domain"),
    F("parentdomainname", "the domain name of the parent domain"),
    F("haschild", "whether the domain has one or more sub-domains", "boolean"),
    F("networkdomain", "the network domain"), F("path", "the path of the domain"),
    F("state", "the state of the domain"), F("created", "the date when this domain was created", "date"),
)
USER_FIELDS = (
    F("id", "the user ID"), F("username", "the user name"), F("firstname", "the user firstname"),
    F("lastname", "the user lastname"), F("email", "the user email address"),
    F("created", "the date and time the user account was created", "date"), F("state", "the user state"),
    F("account", "the account name of the user"), F("accounttype", "the account type of the user", "integer"),
    F("usersource", "the source type of the user"), F("roleid", "the ID of the role"),
    F("roletype", "the type of the role"), F("rolename", "the name of the role"),
    F("domainid", "the domain ID of the user"), F("domain", "the domain name of the user"),
    F("timezone", "the timezone user was created in"), F("apikey", "the api key of the user"),
    F("accountid", "the account ID of the user"),
    F("iscallerchilddomain", "the boolean value representing if the updating target is in caller's child "
      "domain", "boolean"),
    F("isdefault", "true if user is default, false otherwise", "boolean"),
    F("is2faenabled", "true if user has two factor authentication enabled", "boolean"),
    F("is2famandated", "true if user has two factor authentication is mandated", "boolean"),
    F("apikeyaccess", "whether api key access is allowed or not"),
)
ACCOUNT_FIELDS = (
    F("id", "the id of the account"), F("name", "the name of the account"),
    F("accounttype", "account type (admin, domain-admin, user)", "integer"), F("roleid", "the ID of the role"),
    F("roletype", "the type of the role (Admin, ResourceAdmin, DomainAdmin, User)"),
    F("rolename", "the name of the role"), F("domainid", "id of the Domain the account belongs to"),
    F("domain", "name of the Domain the account belongs to"), F("domainpath", "path of the Domain the account "
      "belongs to"), F("networkdomain", "the network domain"), F("state", "the state of the account"),
    F("isdefault", "true if account is default, false otherwise", "boolean"),
    F("created", "the date when this account was created", "date"),
    F("user", "the list of users associated with account", "list", USER_FIELDS),
    F("apikeyaccess", "whether api key access is allowed or not"),
)
ROLE_FIELDS = (
    F("id", "the ID of the role"), F("name", "the name of the role"), F("type", "the type of the role"),
    F("description", "the description of the role"), F("isdefault", "true if role is default", "boolean"),
    F("ispublic", "Indicates whether the role will be visible to all users (public) or only to root admins "
      "(private)", "boolean"), F("state", "the state of the role"),
)
ROLE_PERMISSION_FIELDS = (
    F("id", "the ID of the role permission"), F("roleid", "the ID of the role to which the role permission "
      "belongs"), F("rolename", "the name of the role to which the role permission belongs"),
    F("rule", "the api name or wildcard rule"), F("permission", "the permission type of the api name or "
      "wildcard rule, allow/deny"), F("description", "the description of the role permission"),
)
EVENT_FIELDS = (
    F("id", "the ID of the event"), F("username", "the name of the user who performed the action"),
    F("type", "the type of the event (see event types)"), F("level", "the event level (INFO, WARN, ERROR)"),
    F("description", "a brief description of the event"), F("account", "the account name for the account that "
      "owns the object being acted on in the event"), F("domainid", "the id of the account's domain"),
    F("domain", "the name of the account's domain"), F("domainpath", "path of the Domain the account's domain "
      "belongs to"), F("resourceid", "the id of the resource"), F("resourcetype", "the type of the resource"),
    F("resourcename", "the name of the resource"), F("created", "the date the event was created", "date"),
    F("state", "the state of the event"), F("parentid", "whether the event is parented"),
    F("archived", "whether the event has been archived or not", "boolean"),
)
JOB_FIELDS = (
    F("accountid", "the account id that executed the async command"),
    F("account", "the account that executed the async command"),
    F("domainid", "the domain id that executed the async command"),
    F("domainpath", "the domain that executed the async command"),
    F("userid", "the user that executed the async command"), F("cmd", "the async command executed"),
    F("jobstatus", "the current job status-should be 0 for PENDING", "integer"),
    F("jobprocstatus", "the progress information of the PENDING job", "integer"),
    F("jobresultcode", "the result code for the job", "integer"),
    F("jobresulttype", "the result type"), F("jobresult", "the result reason", "responseobject"),
    F("jobinstancetype", "the instance/entity object related to the job"),
    F("jobinstanceid", "the unique ID of the instance/entity object related to the job"),
    F("managementserverid", "the msid of the management server on which the job is running"),
    F("managementservername", "the management server name of the host"),
    F("created", "the created date of the job", "date"), F("completed", "the completed date of the job", "date"),
    F("jobid", "the ID of the async job"),
)
SUCCESS_FIELDS = (F("success", "true if operation is executed successfully", "boolean"),
                  F("displaytext", "any text associated with the success or failure"))
USERKEYS_FIELDS = (F("apikey", "the api key of the registered user"),
                   F("secretkey", "the secret key of the registered user"))
