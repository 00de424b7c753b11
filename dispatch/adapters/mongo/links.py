"""Live links in MongoDB: one document per rescue and party (`_id` is the link's key), found by
the hash of their token (unique)."""
from __future__ import annotations

from pymongo import ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from dispatch.model.link import Link


class MongoLinks:
    def __init__(self, db: Database) -> None:
        self.col = db.links

    def add(self, link: Link) -> Link:
        try:
            self.col.insert_one(link.to_doc())
        except DuplicateKeyError:  # the same key made at the same moment elsewhere: theirs stands
            return self.for_key(link.key)
        return link

    def for_key(self, key: str) -> Link | None:
        doc = self.col.find_one({"_id": key})
        return Link.from_doc(doc) if doc else None

    def by_hash(self, token_hash: str) -> Link | None:
        doc = self.col.find_one({"token_hash": token_hash})
        return Link.from_doc(doc) if doc else None

    def replace(self, key: str, old_hash: str, link: Link) -> Link | None:
        doc = self.col.find_one_and_update({"_id": key, "token_hash": old_hash},
                                           {"$set": {"token_hash": link.token_hash, "nonce": link.nonce}},
                                           return_document=ReturnDocument.AFTER)
        return Link.from_doc(doc) if doc else None
