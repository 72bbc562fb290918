"""image stores

Revision ID: 006
Revises: 005
"""

from __future__ import annotations

revision = "006"
down_revision = "005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
