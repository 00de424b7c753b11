"""Offer expiry precision: how late (never how early) an unanswered offer is expired.

Runs the real service (`python app.py`: gunicorn + 2 RQ workers, one of them running the
RQ scheduler) on embedded stores with a short OFFER_TIMEOUT_SECONDS, the real `twilio`
client talking to the local fake. Drivers go online and never answer; riders book
rescues; every offer runs out, the next driver is asked, and so on until `--expiries`
offers have expired. Lateness is read back from MongoDB two ways: `late_ms` of each
`offer_expired` event, and `expired_at - expires_at` of each expired offer (negative =
early).

Baseline, same run: the RQ scheduler's own precision. Jobs `time.time` are scheduled
with `Queue.enqueue_in(OFFER_TIMEOUT_SECONDS)` (what the app does for each offer) on the
same queue and workers; their return value is when they actually ran.

`--backlog N --twilio-delay 0.2` adds a send backlog: N texts queued through the app's
`Outbox.queue_text` just after the rescues are booked, to a Twilio that takes 200 ms a
send. Expiry jobs go to the urgent queue that workers drain first, and sends are batched
on a thread pool, so this shows whether an expiry still gets late behind slow sends.

    .venv/bin/python bench/expiry_precision.py [--timeout 3] [--expiries 40] [--rescues 8] [--drivers 12]
    .venv/bin/python bench/expiry_precision.py --backlog 100 --twilio-delay 0.2
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Numbers, Stack, add_drivers, machine_line, pct, text

TARGET_LATE_MS = 1500


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--timeout", type=int, default=3, help="OFFER_TIMEOUT_SECONDS")
    ap.add_argument("--expiries", type=int, default=40, help="stop after this many offers expired")
    ap.add_argument("--rescues", type=int, default=8)
    ap.add_argument("--drivers", type=int, default=12)
    ap.add_argument("--baseline-jobs", type=int, default=20)
    ap.add_argument("--backlog", type=int, default=0, help="texts queued as a send backlog (see above)")
    ap.add_argument("--twilio-delay", type=float, default=0.0, help="fake Twilio's answer time, seconds")
    args = ap.parse_args()

    print(f"offer expiry precision  [{machine_line()}]", flush=True)
    stack = Stack(twilio_delay=args.twilio_delay, prefix="sc-bench-expiry-")
    try:
        env = stack.env(OFFER_TIMEOUT_SECONDS=str(args.timeout), SEARCH_RETRY_SECONDS="2",
                        SEARCH_WINDOW_SECONDS="3600")
        base = env["PUBLIC_BASE_URL"]
        stack.start_app(env)
        numbers = Numbers(seed=5)
        add_drivers(base, args.drivers, numbers)
        time.sleep(0.5)

        import pymongo
        import redis
        from rq import Queue

        db = pymongo.MongoClient(env["MONGO_URL"])["supportcarr"]
        queue = Queue("default-urgent", connection=redis.Redis.from_url(env["REDIS_URL"]))  # where expiries go
        rng = random.Random(3)
        t_start = time.time()
        for _ in range(args.rescues):
            rider = numbers.next()
            lat, lng = 40.71 + rng.random() * 0.10, -74.01 + rng.random() * 0.06
            text(base, rider, f"flat tire at {lat:.5f},{lng:.5f}")
            text(base, rider, "skip")
            text(base, rider, "y")
        if args.backlog:
            from dispatch.adapters.logs import setup_logging
            from dispatch.bootstrap import build_services
            from dispatch.config import load_settings

            setup_logging("WARNING", None, process="bench")
            svc = build_services(load_settings(env))
            for i in range(args.backlog):
                svc.outbox.queue_text(numbers.next(), f"backlog text {i}", key=f"backlog:{i}", kind="bench")
        baseline = []
        deadline = time.time() + 30 + args.expiries * (args.timeout + 2) / max(1, args.rescues) * 3
        next_probe = time.time()
        while time.time() < deadline:
            if len(baseline) < args.baseline_jobs and time.time() >= next_probe:
                baseline.append((time.time() + args.timeout,
                                 queue.enqueue_in(timedelta(seconds=args.timeout), time.time, result_ttl=600)))
                next_probe = time.time() + 0.37  # off the second boundary on purpose
            if db.events.count_documents({"type": "offer_expired"}) >= args.expiries and \
                    len(baseline) >= args.baseline_jobs:
                break
            time.sleep(0.1)
        time.sleep(args.timeout + 2.5)  # let the last baseline jobs run

        events = list(db.events.find({"type": "offer_expired"}))
        late_events = [float(e["data"]["late_ms"]) for e in events]
        offers = list(db.offers.find({"status": "expired"}))
        late_offers = [int(o["expired_at"]) - int(o["expires_at"]) for o in offers]
        by_timer = sum(1 for e in events if e.get("by") == "timer")
        made = db.offers.count_documents({})
        base_late = []
        for due, job in baseline:
            job.refresh()
            ran = job.return_value()
            if ran is not None:
                base_late.append((ran - due) * 1000)
        elapsed = time.time() - t_start

        print(f"OFFER_TIMEOUT_SECONDS={args.timeout}, {args.rescues} rescues, {args.drivers} drivers who never answer; "
              f"{made} offers made, {len(offers)} expired in {elapsed:.0f} s")
        if args.backlog:
            print(f"with a backlog of {args.backlog} texts queued at the start, Twilio answering in "
                  f"{args.twilio_delay * 1000:.0f} ms")
        print()
        print(f"{'lateness (ms)':44}{'n':>5}{'min':>8}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}")
        for name, xs in (("baseline: RQ enqueue_in job, ran - due", base_late),
                         ("offer_expired events: late_ms", late_events),
                         ("offers: expired_at - expires_at", late_offers)):
            if xs:
                print(f"{name:44}{len(xs):5d}{min(xs):8.0f}{pct(xs, 50):8.0f}{pct(xs, 90):8.0f}{pct(xs, 99):8.0f}"
                      f"{max(xs):8.0f}")
        early = sum(1 for x in late_offers if x < 0)
        over = sum(1 for x in late_offers if x > TARGET_LATE_MS)
        if base_late and late_offers:
            # The scheduler's lateness sits around 0 (it can even run early), so a ratio means little: the
            # difference is what the app's expiry path adds to a plain scheduled job.
            print(f"\noffers vs a plain scheduled job: p50 {pct(late_offers, 50) - pct(base_late, 50):+.0f} ms, "
                  f"p99 {pct(late_offers, 99) - pct(base_late, 99):+.0f} ms, "
                  f"max {max(late_offers) - max(base_late):+.0f} ms "
                  f"(p50 ratio {pct(late_offers, 50) / max(1.0, pct(base_late, 50)):.1f}x)")
        print(f"expired by the offer timer: {by_timer} of {len(events)} (the rest by the sweeper)")
        print(f"early expiries: {early}; later than {TARGET_LATE_MS} ms: {over} of {len(late_offers)}")
        ok = late_offers and early == 0 and over == 0
        print(f"target <= {TARGET_LATE_MS} ms late, never early: {'met' if ok else 'MISSED'} "
              f"(max {max(late_offers) if late_offers else float('nan'):.0f} ms)")
        return 0
    finally:
        stack.close()


if __name__ == "__main__":
    sys.exit(main())
