"""offerings

Revision ID: 004
Revises: 003
"""

from __future__ import annotations

revision = "004"
down_revision = "003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
