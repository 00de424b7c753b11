"""Phone numbers: E.164 normalisation for people, stable keys for odd senders, masking for logs."""
from __future__ import annotations

import phonenumbers


def normalise(raw: str | None, region: str = "US") -> str | None:
    """E.164 for a valid number, else None (phonenumbers happily formats invalid ones)."""
    if not raw:
        return None
    try:
        parsed = phonenumbers.parse(raw.strip(), region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def sender_key(raw: str | None, region: str = "US") -> str | None:
    """The conversation key for an inbound sender.

    Real numbers become E.164 so a call and a text from one phone meet in one
    conversation; short codes, `anonymous` and `client:` identities are kept as sent
    (trimmed, bounded) so they still get an answer without being mistaken for a number.
    """
    if raw is None:
        return None
    raw = raw.strip()[:64]
    if not raw:
        return None
    return normalise(raw, region) or raw


def is_textable(key: str) -> bool:
    """Only real numbers can be texted; short codes and anonymous callers cannot."""
    return key.startswith("+") and normalise(key) == key


def mask(phone: str | None) -> str:
    """For logs and the status page: enough to tell numbers apart, never the whole number."""
    if not phone:
        return "-"
    digits = "".join(c for c in phone if c.isdigit())
    if len(digits) < 7:
        return "*" * len(phone)
    return f"{phone[:2]}{'*' * (len(phone) - 6)}{phone[-4:]}"
