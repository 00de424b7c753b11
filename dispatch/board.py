"""What the status page shows: open rescues with their flags, drivers, today's figures."""
from __future__ import annotations

import statistics
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from dispatch.clock import iso, now_ms
from dispatch.dispatcher import eta_minutes
from dispatch.drivers import ONLINE_STATUSES
from dispatch.phones import mask
from dispatch.rescues import OPEN_STATUSES, STATUSES, Rescue

if TYPE_CHECKING:
    from dispatch.services import Services

LONG_SEARCH_MS = 5 * 60 * 1000
RECENT_MS = 24 * 3600 * 1000
BOARD_RESCUES = 200


def _flags(rescue: Rescue, now: int) -> list[str]:
    flags = []
    if rescue.status == "unfulfilled":
        flags.append("unfulfilled")
    if rescue.status == "searching" and now - rescue.searching_since > LONG_SEARCH_MS:
        flags.append("long search")
    if rescue.problem == "crash" and rescue.is_open:
        flags.append("crash")
    return flags


def board(svc: "Services") -> dict[str, Any]:
    now = now_ms()
    docs = list(svc.db.rescues.find({"$or": [{"status": {"$in": list(OPEN_STATUSES)}},
                                             {"status": "unfulfilled", "updated_at": {"$gt": now - RECENT_MS}}]})
                .sort("created_at", -1).limit(BOARD_RESCUES))
    drivers = {d["_id"]: d for d in svc.db.drivers.find()}
    rescues = []
    for doc in docs:
        r = Rescue.from_doc(doc)
        driver = drivers.get(r.driver_id) if r.driver_id else None
        rescues.append({
            "id": r.id, "code": r.code, "status": r.status, "age_s": (now - r.created_at) // 1000,
            "problem": r.problem_label, "pickup": r.pickup, "rider": mask(r.rider_phone),
            "driver": driver["name"] if driver else None, "driver_id": r.driver_id,
            "eta_min": eta_minutes(driver, r, svc.settings.eta_speed_kmh) if driver and r.status in ("assigned", "en_route") else None,
            "payment_status": r.payment_status, "quote_cents": r.quote_cents, "flags": _flags(r, now)})
    rescues.sort(key=lambda x: (not x["flags"], -x["age_s"]))
    jobs = {r["driver_id"]: r["code"] for r in rescues if r["driver_id"]}
    driver_rows = [{
        "id": d["_id"], "name": d["name"], "vehicle": d["vehicle"], "status": d.get("status", "offline"),
        "active": bool(d.get("active", True)), "location": d.get("location"),
        "location_age_s": (now - int(d["location_updated_at"])) // 1000 if d.get("location_updated_at") else None,
        "job": jobs.get(d["_id"]),
        "rating": round(d["rating_sum"] / d["rating_count"], 2) if d.get("rating_count") else None,
    } for d in sorted(drivers.values(), key=lambda d: d["name"])]
    area = svc.settings.service_area
    return {"rescues": rescues, "drivers": driver_rows, "stats": stats(svc), "now": iso(now),
            "area": {"lat": area.lat, "lng": area.lng, "radius_km": area.radius_km}}


def stats(svc: "Services") -> dict[str, Any]:
    """Counts by status, today's median minutes to assign and to complete, drivers online."""
    start = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    today = int(start.timestamp() * 1000)
    counts = {s: svc.db.rescues.count_documents({"status": s}) for s in STATUSES}
    created = {d["_id"]: d["created_at"] for d in svc.db.rescues.find({"created_at": {"$gte": today}},
                                                                      {"created_at": 1})}
    to_assign, to_complete = [], []
    for e in svc.db.events.find({"at": {"$gte": today}, "type": {"$in": ["driver_assigned", "rescue_completed"]}}):
        if e["rescue_id"] in created:
            minutes = (e["at"] - created[e["rescue_id"]]) / 60000
            (to_assign if e["type"] == "driver_assigned" else to_complete).append(minutes)
    return {
        "by_status": counts,
        "median_minutes_to_assign_today": round(statistics.median(to_assign), 1) if to_assign else None,
        "median_minutes_to_complete_today": round(statistics.median(to_complete), 1) if to_complete else None,
        "drivers_online": svc.db.drivers.count_documents({"status": {"$in": list(ONLINE_STATUSES)}}),
        "rescues_today": len(created),
    }
