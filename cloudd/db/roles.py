"""Roles and their ordered allow/deny permission rules."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred

from cloudd.db import model
from cloudd.db.base import Conflict, DBComponent, NotFound, Page, apply_page, contains, insert_id, new_uuid

R = model.roles
P = model.role_permissions


@dataclass(frozen=True)
class Role:
    id: int
    uuid: str
    name: str
    role_type: str
    description: str | None
    is_default: bool


@dataclass(frozen=True)
class RolePermission:
    id: int
    uuid: str
    role_id: int
    role_uuid: str
    role_name: str
    rule: str
    permission: str
    sort_order: int
    description: str | None


def _role(r: sa.Row) -> Role:
    m = r._mapping
    return Role(id=m["id"], uuid=m["uuid"], name=m["name"], role_type=m["role_type"],
                description=m["description"], is_default=bool(m["is_default"]))


def _perm_select() -> sa.Select:
    return sa.select(P, R.c.uuid.label("role_uuid"), R.c.name.label("role_name")).select_from(
        P.join(R, P.c.role_id == R.c.id))


def _perm(r: sa.Row) -> RolePermission:
    m = r._mapping
    return RolePermission(id=m["id"], uuid=m["uuid"], role_id=m["role_id"], role_uuid=m["role_uuid"],
                          role_name=m["role_name"], rule=m["rule"], permission=m["permission"],
                          sort_order=m["sort_order"], description=m["description"])


class RolesComponent(DBComponent):
    def thd_create(self, conn: Connection, name: str, role_type: str, description: str | None,
                   is_default: bool = False) -> int:
        return int(insert_id(conn.execute(R.insert().values(
            uuid=new_uuid(), name=name, role_type=role_type, description=description,
            is_default=int(is_default), created=self.now()))))

    def thd_get(self, conn: Connection, role_id: int) -> Role:
        row = conn.execute(sa.select(R).where(R.c.id == role_id, R.c.removed.is_(None))).first()
        if row is None:
            raise NotFound(role_id)
        return _role(row)

    def get(self, role_id: int) -> Deferred[Role]:
        return self.pool.do(lambda conn: self.thd_get(conn, role_id))

    def get_by_uuid(self, uuid: str) -> Deferred[Role]:
        def thd(conn: Connection) -> Role:
            row = conn.execute(sa.select(R).where(R.c.uuid == uuid, R.c.removed.is_(None))).first()
            if row is None:
                raise NotFound(uuid)
            return _role(row)

        return self.pool.do(thd)

    def default_for_type(self, role_type: str) -> Deferred[Role]:
        def thd(conn: Connection) -> Role:
            row = conn.execute(sa.select(R).where(
                R.c.role_type == role_type, R.c.is_default == 1, R.c.removed.is_(None)
            ).order_by(R.c.id)).first()
            if row is None:
                raise NotFound(role_type)
            return _role(row)

        return self.pool.do(thd)

    def create(self, name: str, role_type: str, description: str | None,
               copy_from: Role | None = None) -> Deferred[Role]:
        def thd(conn: Connection) -> Role:
            if conn.execute(sa.select(R.c.id).where(R.c.name == name, R.c.removed.is_(None))).first():
                raise Conflict(f"Role with name {name} already exists")
            rid = self.thd_create(conn, name, role_type, description)
            if copy_from is not None:
                rules = conn.execute(sa.select(P).where(P.c.role_id == copy_from.id)
                                     .order_by(P.c.sort_order)).all()
                for r in rules:
                    m = r._mapping
                    conn.execute(P.insert().values(uuid=new_uuid(), role_id=rid, rule=m["rule"],
                                                   permission=m["permission"], sort_order=m["sort_order"],
                                                   description=m["description"]))
            return self.thd_get(conn, rid)

        return self.pool.do(thd)

    def search(self, uuid: str | None = None, name: str | None = None, role_type: str | None = None,
             keyword: str | None = None, page: Page | None = None,
             role_types: tuple[str, ...] | None = None) -> Deferred[tuple[int, list[Role]]]:
        def thd(conn: Connection) -> tuple[int, list[Role]]:
            q = sa.select(R).where(R.c.removed.is_(None))
            if role_types is not None:
                q = q.where(R.c.role_type.in_(role_types))
            if uuid is not None:
                q = q.where(R.c.uuid == uuid)
            if name is not None:
                q = q.where(R.c.name == name)
            if role_type is not None:
                q = q.where(R.c.role_type == role_type)
            if keyword:
                q = q.where(contains(R.c.name, keyword))
            total = conn.execute(sa.select(sa.func.count()).select_from(q.subquery())).scalar_one()
            rows = conn.execute(apply_page(q.order_by(R.c.id), page or Page())).all()
            return int(total), [_role(r) for r in rows]

        return self.pool.do(thd)

    def update(self, role: Role, name: str | None, description: str | None,
               role_type: str | None) -> Deferred[Role]:
        def thd(conn: Connection) -> Role:
            values: dict[str, object] = {}
            if name is not None and name != role.name:
                if conn.execute(sa.select(R.c.id).where(R.c.name == name, R.c.removed.is_(None))).first():
                    raise Conflict(f"Role with name {name} already exists")
                values["name"] = name
            if description is not None:
                values["description"] = description
            if role_type is not None:
                values["role_type"] = role_type
            if values:
                conn.execute(R.update().where(R.c.id == role.id).values(**values))
            return self.thd_get(conn, role.id)

        return self.pool.do(thd)

    def delete(self, role: Role) -> Deferred[None]:
        def thd(conn: Connection) -> None:
            used = conn.execute(sa.select(model.accounts.c.id).where(
                model.accounts.c.role_id == role.id, model.accounts.c.removed.is_(None))).first()
            if used is not None:
                raise Conflict("Role cannot be deleted as it is in use by accounts")
            conn.execute(P.delete().where(P.c.role_id == role.id))
            conn.execute(R.update().where(R.c.id == role.id).values(removed=self.now()))

        return self.pool.do(thd)

    def rules(self, role_id: int) -> Deferred[list[RolePermission]]:
        def thd(conn: Connection) -> list[RolePermission]:
            rows = conn.execute(_perm_select().where(P.c.role_id == role_id)
                                .order_by(P.c.sort_order, P.c.id)).all()
            return [_perm(r) for r in rows]

        return self.pool.do(thd)

    def all_rules(self) -> Deferred[dict[int, list[tuple[str, str]]]]:
        """Every role's rules as (rule, permission) in evaluation order; feeds the permission cache."""

        def thd(conn: Connection) -> dict[int, list[tuple[str, str]]]:
            out: dict[int, list[tuple[str, str]]] = {}
            for rid, rule, perm in conn.execute(
                sa.select(P.c.role_id, P.c.rule, P.c.permission).order_by(P.c.role_id, P.c.sort_order, P.c.id)
            ):
                out.setdefault(rid, []).append((rule, perm))
            return out

        return self.pool.do(thd)

    def add_rule(self, role: Role, rule: str, permission: str, description: str | None) -> Deferred[RolePermission]:
        def thd(conn: Connection) -> RolePermission:
            if conn.execute(sa.select(P.c.id).where(P.c.role_id == role.id, P.c.rule == rule)).first():
                raise Conflict(f"Rule {rule} already exists for the role")
            top = conn.execute(sa.select(sa.func.max(P.c.sort_order)).where(P.c.role_id == role.id)).scalar()
            pid = insert_id(conn.execute(P.insert().values(
                uuid=new_uuid(), role_id=role.id, rule=rule, permission=permission,
                sort_order=(top or 0) + 1, description=description)))
            return _perm(conn.execute(_perm_select().where(P.c.id == pid)).one())

        return self.pool.do(thd)

    def get_rule(self, uuid: str) -> Deferred[RolePermission]:
        def thd(conn: Connection) -> RolePermission:
            row = conn.execute(_perm_select().where(P.c.uuid == uuid)).first()
            if row is None:
                raise NotFound(uuid)
            return _perm(row)

        return self.pool.do(thd)

    def delete_rule(self, rule_id: int) -> Deferred[None]:
        def thd(conn: Connection) -> None:
            conn.execute(P.delete().where(P.c.id == rule_id))

        return self.pool.do(thd)

    def update_rule(self, rule: RolePermission, permission: str) -> Deferred[RolePermission]:
        def thd(conn: Connection) -> RolePermission:
            conn.execute(P.update().where(P.c.id == rule.id).values(permission=permission))
            return _perm(conn.execute(_perm_select().where(P.c.id == rule.id)).one())

        return self.pool.do(thd)

    def reorder_rules(self, role: Role, rule_uuids: list[str]) -> Deferred[None]:
        def thd(conn: Connection) -> None:
            current = {u for (u,) in conn.execute(sa.select(P.c.uuid).where(P.c.role_id == role.id))}
            if set(rule_uuids) != current:
                raise Conflict("The rule order must list every rule of the role exactly once")
            for i, u in enumerate(rule_uuids):
                conn.execute(P.update().where(P.c.uuid == u).values(sort_order=i + 1))

        return self.pool.do(thd)
