"""Matching: ranking candidates with 1k / 10k / 100k drivers in the Redis GEO index, against
a linear scan in Python (great_circle to every driver, sort) measured in the same run.

The indexed path is the app's own `dispatch.matching.Matcher` on the embedded Redis
(redis-server 6.2) and the embedded MongoDB-wire server (nx-27017) through pymongo:
`Matcher.candidates()` = `ensure()` (one EXISTS) -> `nearby()` (GEOSEARCH, nearest 50
within the first radius step) -> one `find({_id: {$in: hits}})` re-check in MongoDB ->
`is_candidate` -> `rank()`. Each part is also timed on its own.

MongoDB holds every driver document (inserted with `insert_many` in batches of 1,000:
about 8,000 docs/s on nx-27017, so some 12 s at 100k; one by one through the admin API
it would be minutes). `--mongo-hits-only` loads only the drivers the timed queries can hit
(the union of their GEOSEARCH hits): the re-check looks drivers up by `_id`, so its cost
follows the number of hits (<= 50 per radius step), not N, and the two modes measure the
same within noise.

The scan baseline gets every driver as a Python list in memory for free (no database
read), computes `geopy.distance.great_circle` (the app's distance) to each, sorts, keeps
the first radius step with anyone in it (nearest 50) and ranks them with the same `rank()`:
the most favourable setting for the scan. A real scan would also read N documents.

    .venv/bin/python bench/matching_scaling.py [--sizes 1000,10000,100000] [--queries 200]
        [--scan-queries 20] [--mongo-hits-only]
"""
from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Stack, machine_line, pct

CENTER = (40.7580, -73.9855)  # the default SERVICE_AREA: Times Square, 15 km
AREA_KM = 15.0
PICKUP_KM = 10.0
TARGET_SPEEDUP = 20.0


def random_point(rng: random.Random, radius_km: float) -> tuple[float, float]:
    """Uniform over a disc around CENTER."""
    r = radius_km * math.sqrt(rng.random())
    theta = rng.random() * 2 * math.pi
    dlat = r * math.cos(theta) / 111.32
    dlng = r * math.sin(theta) / (111.32 * math.cos(math.radians(CENTER[0])))
    return CENTER[0] + dlat, CENTER[1] + dlng


def ms(seconds: float) -> float:
    return seconds * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--queries", type=int, default=200, help="timed indexed queries per size")
    ap.add_argument("--scan-queries", type=int, default=20,
                    help="timed scan queries per size (fewer at 100k: each takes about a second)")
    ap.add_argument("--mongo-hits-only", action="store_true",
                    help="load only the driver documents the queries can hit (faster set-up)")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]

    import pymongo
    import redis
    from geopy.distance import great_circle

    from dispatch.adapters.mongo.drivers import MongoDrivers
    from dispatch.adapters.redis_geo import CANDIDATES_PER_STEP, RedisGeoIndex
    from dispatch.adapters.redis_keys import KeySpace
    from dispatch.matching import RADIUS_STEPS_KM, Matcher
    from dispatch.model.clock import now_ms
    from dispatch.model.driver import Candidate, rank

    print(f"matching scaling  [{machine_line()}]", flush=True)
    print(f"drivers uniform over a {AREA_KM:.0f} km disc round Times Square; pickups within {PICKUP_KM:.0f} km; "
          f"radius steps {RADIUS_STEPS_KM} km, nearest {CANDIDATES_PER_STEP} per step\n", flush=True)
    stack = Stack(prefix="sc-bench-matching-")
    rows = []
    try:
        r = redis.Redis.from_url(stack.redis_url)
        db = pymongo.MongoClient(stack.mongo_url, tz_aware=True)["bench_matching"]
        matcher = Matcher(RedisGeoIndex(r, KeySpace("bench_matching")), MongoDrivers(db))
        geo = matcher.geo
        for n in sizes:
            rng = random.Random(n)
            now = now_ms()
            drivers = [(f"d{n}-{i}", *random_point(rng, AREA_KM), now - rng.randint(0, 3_600_000)) for i in range(n)]
            r.delete(geo.key)
            db.drivers.drop()
            t0 = time.perf_counter()
            pipe = r.pipeline(transaction=False)
            for k, (did, lat, lng, _) in enumerate(drivers):
                pipe.geoadd(geo.key, [lng, lat, did])
                if k % 5000 == 4999:
                    pipe.execute()
            pipe.execute()
            r.set(geo.built_key, now)  # the index is built: ensure() must not rebuild it from MongoDB
            geo_load = time.perf_counter() - t0

            def doc(d):
                return {"_id": d[0], "phone": f"+1{hash(d[0]) % 10**10:010d}", "name": d[0], "vehicle": "Van",
                        "status": "available", "active": True,
                        "location": {"lat": d[1], "lng": d[2], "label": ""}, "location_updated_at": now,
                        "idle_since": d[3], "updated_at": now}

            queries = [random_point(rng, PICKUP_KM) for _ in range(args.queries)]
            by_id = {d[0]: d for d in drivers}
            t0 = time.perf_counter()
            if not args.mongo_hits_only:
                for k in range(0, n, 1000):
                    db.drivers.insert_many([doc(d) for d in drivers[k:k + 1000]], ordered=False)
                mongo_docs = n
            else:
                needed: set[str] = set()
                for lat, lng in queries:
                    for radius in RADIUS_STEPS_KM:
                        hits = geo.nearby(lat, lng, radius)
                        needed.update(h[0] for h in hits)
                        if hits:
                            break
                docs = [doc(by_id[i]) for i in needed]
                for k in range(0, len(docs), 1000):
                    db.drivers.insert_many(docs[k:k + 1000], ordered=False)
                mongo_docs = len(docs)
            mongo_load = time.perf_counter() - t0

            t_geo, t_mongo, t_rank, t_full, hit_counts = [], [], [], [], []
            for lat, lng in queries[:5]:  # warm-up
                matcher.candidates(lat, lng, set())
            for lat, lng in queries:
                t0 = time.perf_counter()
                for radius in RADIUS_STEPS_KM:
                    hits = geo.nearby(lat, lng, radius)
                    if hits:
                        break
                t1 = time.perf_counter()
                found = {d["_id"]: d for d in db.drivers.find({"_id": {"$in": [h[0] for h in hits]}})}
                t2 = time.perf_counter()
                cands = [Candidate(h[0], h[1], int(found[h[0]]["idle_since"])) for h in hits if h[0] in found]
                t3 = time.perf_counter()
                ranked = rank(cands)
                t4 = time.perf_counter()
                full = matcher.candidates(lat, lng, set())
                t5 = time.perf_counter()
                assert ranked and full and full[0].driver_id == ranked[0].driver_id
                t_geo.append(t1 - t0)
                t_mongo.append(t2 - t1)
                t_rank.append(t4 - t3)
                t_full.append(t5 - t4)
                hit_counts.append(len(hits))

            def scan(lat, lng):
                dists = sorted((great_circle((lat, lng), (d[1], d[2])).km, d) for d in drivers)
                for radius in RADIUS_STEPS_KM:
                    within = [Candidate(d[0], km, d[3]) for km, d in dists[:CANDIDATES_PER_STEP] if km <= radius]
                    if within:
                        return rank(within)
                return []

            t_scan = []
            for lat, lng in queries[:args.scan_queries]:
                t0 = time.perf_counter()
                best = scan(lat, lng)
                t_scan.append(time.perf_counter() - t0)
                full = matcher.candidates(lat, lng, set())
                # Same winner both ways (GEOSEARCH distances are geohash-rounded: allow a tie).
                assert best and full and (best[0].driver_id == full[0].driver_id
                                           or abs(best[0].distance_km - full[0].distance_km) < 0.01)
            row = dict(n=n, geo=statistics.median(t_geo), mongo=statistics.median(t_mongo),
                       rank=statistics.median(t_rank), full=statistics.median(t_full), full99=pct(t_full, 99),
                       scan=statistics.median(t_scan), hits=statistics.median(hit_counts), docs=mongo_docs,
                       geo_load=geo_load, mongo_load=mongo_load)
            rows.append(row)
            print(f"  {n:>7} drivers: GEOADD load {geo_load:.2f} s; MongoDB {mongo_docs} docs in {mongo_load:.2f} s "
                  f"({mongo_docs / max(mongo_load, 1e-9):.0f} docs/s)", flush=True)

        print(f"\nper query, medians (ms)       {'GEOSEARCH':>10}{'Mongo $in':>10}{'rank':>7}{'candidates()':>13}"
              f"{'p99':>7}{'scan':>9}{'scan/idx':>9}{'hits':>6}")
        for row in rows:
            print(f"  {row['n']:>7} drivers{'':14}{ms(row['geo']):10.2f}{ms(row['mongo']):10.2f}{ms(row['rank']):7.2f}"
                  f"{ms(row['full']):13.2f}{ms(row['full99']):7.2f}{ms(row['scan']):9.1f}"
                  f"{row['scan'] / row['full']:8.0f}x{row['hits']:6.0f}")
        first, last = rows[0], rows[-1]
        growth_n = last["n"] / first["n"]
        print(f"\ngrowth {first['n']} -> {last['n']} drivers ({growth_n:.0f}x): "
              f"candidates() {last['full'] / first['full']:.2f}x, "
              f"GEOSEARCH {last['geo'] / first['geo']:.2f}x, scan {last['scan'] / first['scan']:.0f}x")
        speedup = last["scan"] / last["full"]
        print(f"speed-up over the scan at {last['n']}: {speedup:.0f}x (target >= {TARGET_SPEEDUP:.0f}x: "
              f"{'met' if speedup >= TARGET_SPEEDUP else 'MISSED'}); growth well below linear: "
              f"{'met' if last['full'] / first['full'] < growth_n / 10 else 'MISSED'}")
        return 0
    finally:
        stack.close()


if __name__ == "__main__":
    sys.exit(main())
