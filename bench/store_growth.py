"""What the hot store queries cost as history grows, on the embedded MongoDB-wire server.

Every inbound text runs the inbound drain's look and its number's look, every text out runs
the outbox drain's look and its number's lane, and a rider's text looks for their open
rescue. On a real MongoDB each is an index lookup. nx-27017 (neosqlite over SQLite) serves a
query from an index only when the query's fields are compared in a form SQLite can index
(see `EMBEDDED_SCALARS` in dispatch.adapters.mongo): otherwise each query scans the whole
collection, and the service slows down as the weeks of history it keeps grow.

The bench starts one nx-27017, and for each tree (this one and `--baseline-tree`, each in a
process of its own that imports that tree's stores and indexes, on a database of its own)
fills a history of N settled texts (half in, half out, over 500 numbers) with a rescue, five
events and an offer per 20 texts, plus a few texts still waiting, then times each hot call
and two of the status page's queries (median of `--calls`) at each history size. It prints
ms per call, how much each call grew from the smallest history to the largest, and this tree
against the baseline at the largest.

    .venv/bin/python bench/store_growth.py [--sizes 1000,20000] [--calls 15] [--baseline-tree /tmp/base]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHONES = 500
WAITING = 5  # texts in and out still to be handled, so each look finds something


def phone(i: int) -> str:
    return f"+1347{i % PHONES:07d}"


def fill(db, start: int, stop: int) -> None:
    """Settled history from text `start` to `stop` (the shapes the stores write)."""
    now = int(time.time() * 1000)
    texts, rescues, events, offers = [], [], [], []
    for i in range(start, stop):
        common = {"_id": uuid.uuid4().hex, "key": f"bench:{uuid.uuid4().hex}", "phone": phone(i), "body": "ok",
                  "seq": time.time_ns(), "created_at": now - (stop - i), "updated_at": now}
        if i % 2:
            texts.append({**common, "direction": "in", "channel": "sms", "processed": True, "status": "driver:busy",
                          "twilio_sid": f"SM{uuid.uuid4().hex}"})
        else:
            texts.append({**common, "direction": "out", "kind": "reply", "status": "delivered", "status_rank": 4,
                          "attempts": 1, "twilio_sid": f"SM{uuid.uuid4().hex}"})
        if i % 20 == 0:
            rid = uuid.uuid4().hex
            rescues.append({"_id": rid, "code": f"B{i}", "request_key": f"bench:{rid}", "rider_phone": phone(i),
                            "status": "completed", "created_at": now - (stop - i), "updated_at": now})
            events += [{"_id": uuid.uuid4().hex, "rescue_id": rid, "type": "bench", "at": now - (stop - i) + k,
                        "handled": True} for k in range(5)]
            offers.append({"_id": uuid.uuid4().hex, "rescue_id": rid, "driver_id": f"d{i % 50}", "status": "accepted",
                           "created_at": now - (stop - i), "expires_at": now})
    for col, docs in (("messages", texts), ("rescues", rescues), ("events", events), ("offers", offers)):
        for k in range(0, len(docs), 1000):
            db[col].insert_many(docs[k:k + 1000])


def waiting(db) -> None:
    now = int(time.time() * 1000)
    for i in range(WAITING):
        db.messages.insert_one({"_id": uuid.uuid4().hex, "key": f"bench:{uuid.uuid4().hex}", "phone": phone(i),
                                "direction": "in", "channel": "sms", "processed": False, "body": "hi",
                                "seq": time.time_ns(), "created_at": now, "updated_at": now, "status": "received"})
        db.messages.insert_one({"_id": uuid.uuid4().hex, "key": f"bench:{uuid.uuid4().hex}", "phone": phone(i),
                                "direction": "out", "kind": "reply", "status": "pending", "status_rank": 0,
                                "attempts": 0, "body": "hi", "seq": time.time_ns(), "created_at": now,
                                "updated_at": now})


def child(url: str, db_name: str, sizes: list[int], calls: int) -> None:
    """Runs in the tree under test (its root first on sys.path)."""
    import pymongo

    from dispatch.adapters.mongo import ensure_indexes
    from dispatch.adapters.mongo.events import MongoEventStore
    from dispatch.adapters.mongo.messages import MongoMessages
    from dispatch.adapters.mongo.offers import MongoOffers
    from dispatch.adapters.mongo.rescues import MongoRescues

    db = pymongo.MongoClient(url)[db_name]
    ensure_indexes(db)
    messages, rescues, events, offers = MongoMessages(db), MongoRescues(db), MongoEventStore(db), MongoOffers(db)
    waiting(db)
    one_rescue = {}
    hot = {
        "inbound drain look (unapplied)": lambda: messages.unapplied(64),
        "a number's texts in (unapplied_from)": lambda: messages.unapplied_from(phone(1)),
        "outbox drain look (unfinished)": lambda: messages.unfinished(64),
        "a number's lane (unfinished_to)": lambda: messages.unfinished_to(phone(1), 50),
        "rider's open rescue (open_for_rider)": lambda: rescues.open_for_rider(phone(1)),
        "a rescue's timeline (events)": lambda: events.timeline(one_rescue["id"]),
        "a rescue's offers": lambda: offers.for_rescue(one_rescue["id"]),
        "a driver's latest offer": lambda: offers.latest_for_driver("d7"),
        # The status page's (per view, not per text):
        "a rescue's texts (detail page)": lambda: messages.for_rescue(one_rescue["id"], [phone(0)], 0, 1, 50),
        "the board's rescues (on_board)": lambda: rescues.on_board(0, 200),
    }
    figures: dict[str, dict[int, float]] = {name: {} for name in hot}
    filled = 0
    for size in sizes:
        fill(db, filled, size)
        filled = size
        one_rescue["id"] = db.rescues.find_one({"code": "B0"})["_id"]
        for name, call in hot.items():
            call()  # warm
            times = []
            for _ in range(calls):
                t0 = time.perf_counter()
                call()
                times.append((time.perf_counter() - t0) * 1000)
            figures[name][size] = statistics.median(times)
    print(json.dumps(figures))


def run_tree(tree: Path, url: str, sizes: list[int], calls: int) -> dict[str, dict[str, float]]:
    code = ("import sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(1, sys.argv[2]); import store_growth;"
            "store_growth.child(sys.argv[3], sys.argv[4], [int(s) for s in sys.argv[5].split(',')], int(sys.argv[6]))")
    db_name = f"growth_{uuid.uuid4().hex[:8]}"
    out = subprocess.run([sys.executable, "-c", code, str(tree), str(ROOT / "bench"), url, db_name,
                          ",".join(map(str, sizes)), str(calls)], cwd=tree, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,20000", help="history sizes in texts, smallest first")
    ap.add_argument("--calls", type=int, default=15, help="timed calls of each query per size")
    ap.add_argument("--baseline-tree", type=Path, help="another checkout of this repository to compare with")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    sys.path.insert(0, str(ROOT / "bench"))
    from _harness import machine_line

    from app import Supervisor, start_embedded_mongo

    print(machine_line())
    sup, data = Supervisor(), Path(tempfile.mkdtemp(prefix="sc-bench-growth-"))
    try:
        url = start_embedded_mongo(sup, data, dict(os.environ))
        trees = {"this code": ROOT}
        if args.baseline_tree:
            trees["baseline"] = args.baseline_tree.resolve()
        results = {label: run_tree(tree, url, sizes, args.calls) for label, tree in trees.items()}
        fallbacks = (data / "mongo" / "nx-27017.log").read_text(errors="replace").count("fallback")
    finally:
        sup.stop_all()
        import shutil

        shutil.rmtree(data, ignore_errors=True)
    small, large = str(sizes[0]), str(sizes[-1])
    for label, figures in results.items():
        print(f"\n{label}: ms per call (median of {args.calls}) at {', '.join(map(str, sizes))} texts of history")
        for name, by_size in figures.items():
            cells = "  ".join(f"{by_size[str(s)]:7.2f}" for s in sizes)
            print(f"  {name:40s} {cells}   grew {by_size[large] / by_size[small]:5.1f}x")
    if "baseline" in results:
        print(f"\nthis code against the baseline at {large} texts:")
        for name, by_size in results["this code"].items():
            base = results["baseline"][name][large]
            print(f"  {name:40s} {by_size[large]:7.2f} vs {base:7.2f} ms   {by_size[large] / base:5.2f}x")
    print(f"\nnx-27017 fallback lines during the run: {fallbacks}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
