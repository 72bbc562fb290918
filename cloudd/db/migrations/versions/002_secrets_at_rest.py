"""secrets at rest: API secret keys sealed with AES-GCM, session keys replaced by keyed hashes

Every stored API secret key is sealed under the secrets key (`cloudd.util.sealing`, bound to the
user's uuid); `users.secret_key` becomes TEXT, since a sealed key is longer than the 255 characters
a user-chosen key may have. Live login sessions are ended rather than hashed: their keys sat in
clear in the database, readable by any local user on a 0644 SQLite file, so they are treated as
leaked; users log in again. `sessions.session_key` becomes `sessions.key_hash`.

The secrets key comes from the caller (`cloudd upgrade-db` and `twistd cloudd` read it from the
same option, environment variable or file); without one, a database holding secret keys is not
touched.

Revision ID: 002
Revises: 001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cloudd.util.sealing import Sealer, SealError

revision = "002"
down_revision = "001"
branch_labels = None
depends_on = None

users = sa.table("users", sa.column("id", sa.Integer), sa.column("uuid", sa.String),
                 sa.column("secret_key", sa.Text))
sessions = sa.table("sessions", sa.column("id", sa.String))


def upgrade() -> None:
    conn = op.get_bind()
    config = op.get_context().config
    sealer = config.attributes.get("sealer") if config is not None else None
    rows = conn.execute(sa.select(users.c.id, users.c.uuid, users.c.secret_key)
                        .where(users.c.secret_key.is_not(None)).order_by(users.c.id)).all()
    # checked before any schema change: MariaDB does not roll DDL back
    if rows and not isinstance(sealer, Sealer):
        raise RuntimeError("this upgrade seals the stored API secret keys and needs the secrets key: run it "
                           "through `cloudd upgrade-db` (or `twistd cloudd --upgrade-db`), which reads it")

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.alter_column("secret_key", existing_type=sa.String(length=255), type_=sa.Text(),
                              existing_nullable=True)
    for user_id, uuid, secret in rows:
        assert isinstance(sealer, Sealer)
        if _sealed_already(sealer, secret, uuid):
            continue  # a run that stopped half-way on a database without DDL transactions
        conn.execute(users.update().where(users.c.id == user_id).values(secret_key=sealer.seal(secret, uuid)))

    conn.execute(sessions.delete())
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.alter_column("session_key", new_column_name="key_hash", existing_type=sa.String(length=64),
                              existing_nullable=False)


def _sealed_already(sealer: Sealer, value: str, uuid: str) -> bool:
    try:
        sealer.open(value, uuid)
    except SealError:
        return False
    return True
