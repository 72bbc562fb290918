"""Response field documentation shared by several commands (listApis `response`), taken from the
response objects that render them (`cloudd.api.views`)."""

from __future__ import annotations

from cloudd.api.registry import Field, ResponseDoc
from cloudd.api.views import (
    ACCOUNT_OBJ,
    DOMAIN_OBJ,
    EVENT_OBJ,
    JOB_OBJ,
    ROLE_OBJ,
    ROLE_PERMISSION_OBJ,
    USER_OBJ,
)

F = Field


def doc(obj: str, *fields: Field) -> ResponseDoc:
    return ResponseDoc(obj, tuple(fields))


DOMAIN_FIELDS = DOMAIN_OBJ.doc().fields
USER_FIELDS = USER_OBJ.doc().fields
ACCOUNT_FIELDS = ACCOUNT_OBJ.doc().fields
ROLE_FIELDS = ROLE_OBJ.doc().fields
ROLE_PERMISSION_FIELDS = ROLE_PERMISSION_OBJ.doc().fields
EVENT_FIELDS = EVENT_OBJ.doc().fields
JOB_FIELDS = JOB_OBJ.doc().fields
SUCCESS_FIELDS = (F("success", "true if operation is executed successfully", "boolean"),
                  F("displaytext", "any text associated with the success or failure"))
USERKEYS_FIELDS = (F("apikey", "the api key of the registered user"),
                   F("secretkey", "the secret key of the registered user"))
