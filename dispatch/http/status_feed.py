"""What the status page reads besides the board: the live stream of changes, today's figures as
small SVG charts, and the rescue list as CSV (PRODUCT.md §3). Under the admin API's door."""
from __future__ import annotations

import csv
import io

from flask import Blueprint, Response, jsonify

from dispatch.announcer import BOARD
from dispatch.http import error, services
from dispatch.http.api import search_terms
from dispatch.http.auth import acting
from dispatch.http.charts import bar_chart, line_chart
from dispatch.http.sse import stream
from dispatch.http.validation import api_door
from dispatch.model.clock import iso
from dispatch.model.phones import mask
from dispatch.texts import STATUS, page_words

bp = api_door(Blueprint("status_feed", __name__, url_prefix="/api"))

EXPORT_MAX = 5000
CSV_COLUMNS = ("code", "status", "created_at", "updated_at", "problem", "pickup", "dropoff", "rider",
               "driver", "quote_dollars", "payment_status", "cancel_reason", "cancelled_by")


@bp.get("/stream")
def board_stream():
    """A `board` event for every change anywhere (any web process: Redis pub/sub), heartbeats
    between; the page refetches what it shows. 503 when this process has no stream to spare
    (the page then polls /api/board)."""
    response = stream(services().feed, [BOARD], "board")
    return response if response is not None else error("no live stream to spare; poll /api/board", 503)


@bp.get("/figures")
def figures():
    """Today's figures, each with a small server-side SVG chart the page inlines, in the words of
    whoever asks (the charts are drawn here, so their words cannot wait for the page's script)."""
    f = services().board.figures()
    hours, lang = f["hours"], acting().language
    words = page_words(lang, STATUS)["charts"]
    charts = {
        "rescues_per_hour": bar_chart(list(zip(hours, f["rescues_per_hour"], strict=True)),
                                      title=words["rescues_per_hour"], unit=words["rescues"], lang=lang),
        "median_wait": line_chart(list(zip(hours, f["median_wait_minutes"], strict=True)),
                                  title=words["median_wait"], unit=words["minutes"], lang=lang),
    }
    return jsonify({**f, "charts": charts})


@bp.get("/rescues.csv")
def export_rescues():
    """The rescue list (the same q/status/since/until as /api/rescues) as CSV, newest first."""
    terms, refusal = search_terms()
    if refusal:
        return refusal
    svc = services()
    names = {d.id: d.name for d in svc.drivers.all()}
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for r in svc.rescues.search(terms, limit=EXPORT_MAX, offset=0):
        writer.writerow([r.code, r.status, iso(r.created_at), iso(r.updated_at), r.problem, r.pickup.get("label"),
                         (r.dropoff or {}).get("label", ""), mask(r.rider_phone), names.get(r.driver_id or "", ""),
                         f"{r.quote_cents / 100:.2f}", r.payment_status, r.cancel_reason or "",
                         r.cancelled_by or ""])
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=rescues.csv"})
