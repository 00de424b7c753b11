"""Texts in and out: statuses and the order they may move in."""
from __future__ import annotations

PENDING, SENDING, SENT, SANDBOX, SUPPRESSED, FAILED = "pending", "sending", "sent", "sandbox", "suppressed", "failed"
# Ranks keep delivery status monotonic whatever order Twilio's callbacks arrive in.
STATUS_RANK = {
    PENDING: 0, SENDING: 1, "accepted": 2, "scheduled": 2, "queued": 2, SENT: 3,
    "delivered": 4, "read": 5, "undelivered": 5, FAILED: 5, "canceled": 5,
    SUPPRESSED: 5, SANDBOX: 4,
}
# The carrier's code for a number that opted out, recorded on texts we held back.
OPTED_OUT_CODE = 21610
IN, OUT = "in", "out"
SMS, VOICE = "sms", "voice"
