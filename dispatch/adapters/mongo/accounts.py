"""Dispatcher accounts in MongoDB; usernames are unique (stored lower-case)."""
from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from dispatch.model.account import Account


class DuplicateUsername(Exception):
    pass


class MongoAccounts:
    def __init__(self, db: Database) -> None:
        self.col = db.dispatchers

    def add(self, account: Account) -> None:
        try:
            self.col.insert_one({**account.to_doc(), "username_key": account.username.lower()})
        except DuplicateKeyError:
            raise DuplicateUsername(account.username) from None

    def get(self, account_id: str) -> Account | None:
        doc = self.col.find_one({"_id": account_id})
        return Account.from_doc(doc) if doc else None

    def by_username(self, username: str) -> Account | None:
        doc = self.col.find_one({"username_key": username.lower()})
        return Account.from_doc(doc) if doc else None

    def active_by_phone(self, phone: str) -> Account | None:
        for doc in self.col.find({"phone": phone}):
            if bool(doc.get("active", True)):
                return Account.from_doc(doc)
        return None

    def list(self, limit: int, offset: int) -> list[Account]:
        cursor = self.col.find({}).sort("username_key", ASCENDING).skip(offset).limit(limit)
        return [Account.from_doc(d) for d in cursor]

    def update(self, account_id: str, fields: dict[str, Any]) -> Account | None:
        doc = self.col.find_one_and_update({"_id": account_id}, {"$set": fields}, return_document=ReturnDocument.AFTER)
        return Account.from_doc(doc) if doc else None
