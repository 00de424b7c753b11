"""A dispatcher account (PRODUCT.md §8): who is signed in, and what their role lets them do.

Roles are ordered: each includes what the ones before it may do. The password itself never
reaches this module; only its hash is kept, made by the HTTP edge with a well-kept library.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dispatch.model.clock import iso

VIEWER, DISPATCHER, ADMIN = "viewer", "dispatcher", "admin"
ROLES = (VIEWER, DISPATCHER, ADMIN)
# The built-in administrator the admin token signs in as; no account may take its name.
BUILTIN_ADMIN = "admin"
USERNAME_MAX = 40
NAME_MAX = 80
PASSWORD_MIN = 8
PASSWORD_MAX = 200
# The language the status page speaks to this person; an account made before languages had none.
DEFAULT_LANGUAGE = "en"
USERNAME = re.compile(rf"[A-Za-z0-9._-]{{1,{USERNAME_MAX}}}")  # ASCII: one spelling per letter


def may(role: str, needed: str) -> bool:
    """Whether `role` includes `needed` (an unknown role includes nothing)."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def valid_username(username: object) -> bool:
    return (isinstance(username, str) and USERNAME.fullmatch(username) is not None
            and username.lower() != BUILTIN_ADMIN)


def actor(username: str) -> str:
    """The `by` of a dispatcher's action on a rescue's timeline."""
    return f"dispatcher:{username}"


@dataclass(frozen=True)
class Identity:
    """Who is acting, as far as a role check is concerned."""
    username: str
    role: str
    language: str = DEFAULT_LANGUAGE

    @property
    def by(self) -> str:
        return actor(self.username)


@dataclass
class Account:
    id: str
    username: str
    name: str
    role: str
    password_hash: str
    created_at: int
    phone: str | None = None
    active: bool = True
    language: str = DEFAULT_LANGUAGE

    @property
    def identity(self) -> Identity:
        return Identity(self.username, self.role, self.language)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Account:
        return cls(id=doc["_id"], username=doc["username"], name=doc["name"], role=doc["role"],
                   password_hash=doc["password_hash"], created_at=doc["created_at"], phone=doc.get("phone"),
                   active=bool(doc.get("active", True)), language=doc.get("language") or DEFAULT_LANGUAGE)

    def to_doc(self) -> dict[str, Any]:
        return {"_id": self.id, "username": self.username, "name": self.name, "role": self.role,
                "password_hash": self.password_hash, "created_at": self.created_at, "phone": self.phone,
                "active": self.active, "language": self.language}

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "username": self.username, "name": self.name, "role": self.role,
                "phone": self.phone, "active": self.active, "language": self.language,
                "created_at": iso(self.created_at)}
