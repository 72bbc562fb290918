"""storage

Revision ID: 005
Revises: 004
"""

from __future__ import annotations

revision = "005"
down_revision = "004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
