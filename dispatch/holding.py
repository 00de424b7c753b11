"""Texts the SMS webhook kept in Redis while MongoDB was unreachable, recorded once it answers.

Twilio does not redeliver a webhook answered 5xx, so the webhook keeps such a text and
answers 200 (PRODUCT.md §7). Each kept text carries the arrival order (`seq`) it was given
at the webhook, and its record's key is unique (`in:<MessageSid>`), so recording it twice
(two releasers, or a write that reached MongoDB just as it stopped answering) keeps one.
"""
from __future__ import annotations

from dispatch.ports import HeldTexts, MessageStore

RELEASE_BATCH = 200


def release(held: HeldTexts, messages: MessageStore, limit: int = RELEASE_BATCH) -> int:
    """Record the oldest held texts in MongoDB, dropping each from Redis once recorded.
    Returns how many were taken; a MongoDB error leaves the rest held for the next call."""
    taken = held.oldest(limit)
    for entry_id, doc in taken:
        messages.add(doc)
        held.drop(entry_id)
    return len(taken)
