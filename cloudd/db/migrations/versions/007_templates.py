"""templates

Revision ID: 007
Revises: 006
"""

from __future__ import annotations

revision = "007"
down_revision = "006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
