"""Live links (PRODUCT.md §9): the rider's tracking link and the driver's job link of a rescue.

The token in the URL is the only credential a link has, so it is 128 random bits. The store
keeps the token's SHA-256 (links are found by it, so a lookup's timing says nothing about any
token) and a random nonce; the token itself is an HMAC of the nonce under the service's
secret. That way the same link can be put in every text that needs it (the assigned text,
each STATUS reply) without the token being kept anywhere, and a copy of the database alone
opens nothing.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

RIDER, DRIVER = "rider", "driver"
PARTIES = (RIDER, DRIVER)
TOKEN_BYTES = 16  # 128 bits
TOKEN_CHARS = 22  # base64url of 16 bytes, without padding
_TOKEN = re.compile(rf"[A-Za-z0-9_-]{{{TOKEN_CHARS}}}")


@dataclass(frozen=True)
class Link:
    key: str  # one link per rescue and party: see `link_key`
    token_hash: str
    nonce: str
    rescue_id: str
    party: str
    driver_id: str | None
    created_at: int

    def to_doc(self) -> dict:
        return {"_id": self.key, "token_hash": self.token_hash, "nonce": self.nonce, "rescue_id": self.rescue_id,
                "party": self.party, "driver_id": self.driver_id, "created_at": self.created_at}

    @classmethod
    def from_doc(cls, doc: dict) -> Link:
        return cls(key=doc["_id"], token_hash=doc["token_hash"], nonce=doc["nonce"], rescue_id=doc["rescue_id"],
                   party=doc["party"], driver_id=doc.get("driver_id"), created_at=int(doc["created_at"]))


def link_key(rescue_id: str, party: str, driver_id: str | None = None) -> str:
    """The rider has one link per rescue; each driver who gets the job has their own, so the
    link of a driver taken off the job stays theirs, and dead."""
    return f"{rescue_id}:{RIDER}" if party == RIDER else f"{rescue_id}:{DRIVER}:{driver_id}"


def new_nonce() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def derive_token(secret: bytes, nonce: str) -> str:
    digest = hmac.new(secret, nonce.encode(), hashlib.sha256).digest()[:TOKEN_BYTES]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def well_formed(token: str) -> bool:
    """Anything else is not a token of ours: refused before any store is asked."""
    return bool(_TOKEN.fullmatch(token or ""))
