"""Live links (PRODUCT.md §9): minting the rider's tracking link and the driver's job link, and
deciding what a link may still do.

A link is made the first time a text needs it and is the same in every later text (see
dispatch.model.link for why the token is derived rather than stored). The rider's link lives
as long as the rescue, and shows less once it is closed; a driver's link acts only while that
driver holds that open rescue, so it dies when the job is done, cancelled, handed back or
given to someone else.
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from dispatch.config import Settings
from dispatch.model.clock import now_ms
from dispatch.model.driver import Driver
from dispatch.model.link import DRIVER, RIDER, Link, derive_token, link_key, new_nonce, token_hash, well_formed
from dispatch.model.rescue import Rescue
from dispatch.ports import DriverRepository, LinkStore, RescueRepository

PATHS = {RIDER: "t", DRIVER: "d"}


def link_secret(settings: Settings) -> bytes:
    """SECRET_KEY if set, else derived from the admin token, as the session secret is: every
    process agrees, and nothing but the environment holds it."""
    base = settings.secret_key or settings.admin_token or ""
    return hmac.new(base.encode(), b"supportcarr-live-links", hashlib.sha256).digest()


@dataclass(frozen=True)
class Opened:
    """A link someone opened, with what it points at now."""
    link: Link
    rescue: Rescue
    driver: Driver | None  # the link's driver (job links), or the rescue's (tracking links)

    @property
    def live(self) -> bool:
        """Whether the link may still act: the rescue is open and, for a job link, still this
        driver's job."""
        if not self.rescue.is_open:
            return False
        if self.link.party == RIDER:
            return True
        return (self.driver is not None and self.rescue.driver_id == self.link.driver_id
                and self.driver.rescue_id == self.rescue.id)


class Links:
    def __init__(self, settings: Settings, store: LinkStore, rescues: RescueRepository,
                 drivers: DriverRepository) -> None:
        self.base_url = settings.public_base_url
        self.secret = link_secret(settings)
        self.store, self.rescues, self.drivers = store, rescues, drivers

    def track_url(self, rescue: Rescue) -> str:
        return self._url(rescue.id, RIDER, None)

    def job_url(self, rescue: Rescue, driver_id: str) -> str:
        return self._url(rescue.id, DRIVER, driver_id)

    def _url(self, rescue_id: str, party: str, driver_id: str | None) -> str:
        return f"{self.base_url}/{PATHS[party]}/{self.token(rescue_id, party, driver_id)}"

    def token(self, rescue_id: str, party: str, driver_id: str | None = None) -> str:
        key = link_key(rescue_id, party, driver_id)
        link = self.store.for_key(key) or self.store.add(self._mint(key, rescue_id, party, driver_id))
        token = derive_token(self.secret, link.nonce)
        if token_hash(token) == link.token_hash:
            return token
        # The secret changed since this link was made: the old token cannot be rebuilt, so the
        # link gets a new one, and the old one stops opening it.
        fresh = self._mint(key, rescue_id, party, driver_id)
        link = self.store.replace(key, link.token_hash, fresh) or self.store.for_key(key)
        return derive_token(self.secret, link.nonce)

    def _mint(self, key: str, rescue_id: str, party: str, driver_id: str | None) -> Link:
        nonce = new_nonce()
        return Link(key=key, token_hash=token_hash(derive_token(self.secret, nonce)), nonce=nonce,
                    rescue_id=rescue_id, party=party, driver_id=driver_id, created_at=now_ms())

    def open(self, token: str, party: str) -> Opened | None:
        """The link `token` opens for `party`, or None (malformed, unknown, the other party's)."""
        if not well_formed(token):
            return None
        link = self.store.by_hash(token_hash(token))
        if link is None or link.party != party:
            return None
        return self.reopen(link)

    def reopen(self, link: Link) -> Opened | None:
        """The link with what it points at now (a page's later updates)."""
        rescue = self.rescues.get(link.rescue_id)
        if rescue is None:
            return None
        driver_id = link.driver_id if link.party == DRIVER else rescue.driver_id
        return Opened(link, rescue, self.drivers.get(driver_id) if driver_id else None)
