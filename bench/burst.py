"""A burst of rescue requests: N riders confirm within a window (default 60 s); every rescue
must be offered. Queue lag = a rider's confirming "Y" -> the first offer for that rescue
accepted by the (fake) Twilio API; also the time until the last rescue got its offer.

Runs the real service (`python app.py`: gunicorn with 2 gthread workers x 8 threads, and
2 RQ workers with the scheduler) on embedded stores, with the real `twilio` client talking
to a local fake that timestamps each send. Drivers are simulated phones: each answers an
offer "Y" after `--answer-delay` s, then texts ARRIVED and DONE `--job-seconds` later, and
is free again, as a quick real shift would. Before the window every rider has already
texted a location + problem and "skip" (so the window holds the confirmations and what
they set off: dispatch jobs, offers, driver answers, rider notices, payment links).

Confirmations are spread evenly over the window. The baseline, measured in the same run
while the service is idle, is the plain text -> reply round trip (webhook + send job), as
in bench/offer_latency.py.

    .venv/bin/python bench/burst.py [--requests 100] [--drivers 30] [--window 60]
    .venv/bin/python bench/burst.py --requests 1000 --drivers 300        # the big burst
"""
from __future__ import annotations

import argparse
import random
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from _harness import Numbers, Stack, add_drivers, machine_line, pct, text

OFFER_RE = re.compile(r"^SupportCarr offer (R\d+)")


def first_text(fake, phone: str, fragment: str, after: float, timeout: float = 30) -> float:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for t in fake.texts_to(phone):
            if t.at >= after and fragment in t.body:
                return t.at
        time.sleep(0.002)
    raise TimeoutError(f"no {fragment!r} to {phone}")


def wait_quiet(fake, quiet: float = 1.0, timeout: float = 300) -> None:
    """Until the fake Twilio has received nothing new for `quiet` seconds."""
    t0, last, last_change = time.time(), len(fake.sent), time.time()
    while time.time() - t0 < timeout and time.time() - last_change < quiet:
        time.sleep(0.05)
        if len(fake.sent) != last:
            last, last_change = len(fake.sent), time.time()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=100, help="rescues confirmed in the window")
    ap.add_argument("--drivers", type=int, default=30)
    ap.add_argument("--window", type=float, default=60.0, help="seconds over which the Ys are spread")
    ap.add_argument("--answer-delay", type=float, default=1.0, help="driver's time to answer an offer")
    ap.add_argument("--job-seconds", type=float, default=3.0, help="driver's ARRIVED..DONE time")
    ap.add_argument("--baseline-rounds", type=int, default=10)
    ap.add_argument("--tail", type=float, default=180.0, help="max wait for the last offer after the window")
    args = ap.parse_args()

    print(f"burst  [{machine_line()}]", flush=True)
    stack = Stack(prefix="sc-bench-burst-")
    pool = ThreadPoolExecutor(32)
    driver_pool = ThreadPoolExecutor(max(1, args.drivers))
    stop = threading.Event()
    try:
        env = stack.env()
        base = env["PUBLIC_BASE_URL"]
        stack.start_app(env)
        fake = stack.fake
        numbers = Numbers(seed=6)
        drivers = add_drivers(base, args.drivers, numbers)
        driver_phones = {d["phone"] for d in drivers}

        # Baseline: plain text -> reply at idle.
        wait_quiet(fake, 0.5)
        baseline = []
        for _ in range(args.baseline_rounds):
            rider = numbers.next()
            t0 = text(base, rider, "hi")
            baseline.append(first_text(fake, rider, "Where are you?", t0) - t0)

        # Riders reach the quote before the window opens.
        rng = random.Random(11)
        riders = [numbers.next() for _ in range(args.requests)]

        def intake(rider: str) -> None:
            with httpx.Client(timeout=60) as client:
                lat, lng = 40.70 + rng.random() * 0.12, -74.02 + rng.random() * 0.08
                text(base, rider, f"flat tire at {lat:.5f},{lng:.5f}", client)
                text(base, rider, "skip", client)

        t0 = time.time()
        list(pool.map(intake, riders))
        wait_quiet(fake, 1.0)
        print(f"{args.drivers} drivers online; {args.requests} riders at the quote "
              f"(intake took {time.time() - t0:.1f} s "
              f"incl. their replies)", flush=True)

        # Drivers: answer every offer, do the job, come free again.
        handled: set[int] = set()

        def drive(phone: str) -> None:
            with httpx.Client(timeout=60) as client:
                time.sleep(args.answer_delay)
                text(base, phone, "Y", client)
                time.sleep(args.job_seconds)
                text(base, phone, "ARRIVED", client)
                text(base, phone, "DONE", client)

        def watch_offers() -> None:
            seen = 0
            while not stop.is_set():
                sent = fake.sent[seen:]
                for t in sent:
                    if t.to in driver_phones and OFFER_RE.match(t.body) and id(t) not in handled:
                        handled.add(id(t))
                        driver_pool.submit(drive, t.to)
                seen += len(sent)
                time.sleep(0.01)

        from collections import Counter

        import redis
        from rq import Queue
        from rq.job import Job

        conn = redis.Redis.from_url(env["REDIS_URL"])
        queues = [Queue("default-urgent", connection=conn), Queue("default", connection=conn)]
        depth = []
        # Finished jobs are kept 60 s (RESULT_TTL): note each one's function while it is there.
        seen_jobs: set[str] = set()
        by_func: Counter = Counter()
        counting = threading.Event()

        def note_finished() -> None:
            for q in queues:
                new = [i for i in q.finished_job_registry.get_job_ids() if i not in seen_jobs]
                seen_jobs.update(new)
                if counting.is_set():
                    for k in range(0, len(new), 500):
                        for job in Job.fetch_many(new[k:k + 500], connection=conn):
                            if job is not None:
                                by_func[job.func_name.rsplit(".", 1)[-1]] += 1

        def watch_queue() -> None:
            tick = 0
            while not stop.is_set():
                depth.append(sum(q.count for q in queues))
                if tick % 8 == 0:
                    note_finished()
                tick += 1
                time.sleep(0.25)

        threading.Thread(target=watch_offers, daemon=True).start()
        threading.Thread(target=watch_queue, daemon=True).start()

        # CPU of everything the service runs (app.py's tree and the stores), and jobs run, over the burst.
        import psutil

        def service_cpu() -> float:
            procs = [psutil.Process(stack.procs[0].pid)]
            procs += procs[0].children(recursive=True)
            procs += [psutil.Process(child.proc.pid) for child in stack.sup.children]
            total = 0.0
            for proc in procs:
                try:
                    t = proc.cpu_times()
                    total += t.user + t.system + t.children_user + t.children_system
                except psutil.Error:
                    pass
            return total

        cpu_before, wall_before = service_cpu(), time.time()
        note_finished()
        counting.set()

        # The window: one "Y" every window/N seconds.
        y_at: dict[str, float] = {}
        start = time.time() + 0.5

        def confirm(i: int, rider: str) -> None:
            delay = start + i * args.window / args.requests - time.time()
            if delay > 0:
                time.sleep(delay)
            with httpx.Client(timeout=60) as client:
                y_at[rider] = text(base, rider, "y", client)

        futures = [pool.submit(confirm, i, rider) for i, rider in enumerate(riders)]
        for f in futures:
            f.result()
        last_y = max(y_at.values())

        import pymongo

        db = pymongo.MongoClient(env["MONGO_URL"])["supportcarr"]
        code_of = {}
        first_offer: dict[str, float] = {}
        deadline = time.time() + args.tail
        while time.time() < deadline:
            if len(code_of) < len(riders):
                code_of = {d["rider_phone"]: d["code"] for d in db.rescues.find({}, {"rider_phone": 1, "code": 1})}
            for t in list(fake.sent):
                m = OFFER_RE.match(t.body)
                if m and m.group(1) not in first_offer:
                    first_offer[m.group(1)] = t.at
            if len(code_of) >= len(riders) and all(code_of.get(r) in first_offer for r in riders):
                break
            time.sleep(0.1)
        stop.set()
        cpu_used, wall_used = service_cpu() - cpu_before, time.time() - wall_before
        note_finished()
        jobs_run = sum(by_func.values())
        offered = [r for r in riders if code_of.get(r) in first_offer]
        lags = [first_offer[code_of[r]] - y_at[r] for r in offered]
        first_y = min(y_at.values())
        last_offer = max((first_offer[code_of[r]] for r in offered), default=float("nan"))
        statuses = {}
        waited = set()  # found nobody free at first: the dispatcher's retry timer (SEARCH_RETRY_SECONDS) ran
        for d in db.rescues.find({}, {"status": 1, "next_dispatch_at": 1, "rider_phone": 1}):
            statuses[d["status"]] = statuses.get(d["status"], 0) + 1
            if int(d.get("next_dispatch_at") or 0) > 0:
                waited.add(d["rider_phone"])
        direct = [first_offer[code_of[r]] - y_at[r] for r in offered if r not in waited]

        b50 = pct(baseline, 50)
        print(f"\n{args.requests} confirmations over {last_y - first_y:.1f} s (asked: {args.window:.0f} s), "
              f"{args.drivers} drivers (answer {args.answer_delay:.0f} s, job {args.job_seconds:.0f} s)")
        print(f"{'(ms)':34}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}")
        print(f"{'baseline: text -> reply, idle':34}{b50 * 1000:8.0f}{pct(baseline, 90) * 1000:8.0f}"
              f"{pct(baseline, 99) * 1000:8.0f}{max(baseline) * 1000:8.0f}")
        if lags:
            print(f"{'queue lag: rider Y -> offer sent':34}{pct(lags, 50) * 1000:8.0f}{pct(lags, 90) * 1000:8.0f}"
                  f"{pct(lags, 99) * 1000:8.0f}{max(lags) * 1000:8.0f}")
            if waited and direct:
                print(f"{'  of which never waited for a driver':34}"
                      f"{pct(direct, 50) * 1000:8.0f}{pct(direct, 90) * 1000:8.0f}"
                      f"{pct(direct, 99) * 1000:8.0f}{max(direct) * 1000:8.0f}")
            print(f"queue lag / baseline: p50 {pct(lags, 50) / b50:.1f}x, p99 {pct(lags, 99) / b50:.1f}x")
            print(f"rescues that found no free driver and waited for the dispatcher's retry timer: {len(waited)}")
        print(f"rescues offered: {len(offered)} of {args.requests}"
              f"{'' if len(offered) == args.requests else '  (NOT every rescue was offered within the tail)'}")
        print(f"time until the last offer: {last_offer - first_y:.1f} s after the first Y "
              f"({last_offer - last_y:+.1f} s after the last Y)")
        print(f"RQ queue depth during the burst: max {max(depth) if depth else 0}, "
              f"median {pct(depth, 50) if depth else 0:.0f}")
        print(f"rescue statuses at the end: {statuses}")
        print(f"service CPU from the first Y to the end: {cpu_used:.1f} core-s in {wall_used:.0f} s "
              f"({cpu_used / wall_used:.2f} of {psutil.cpu_count()} cores busy, "
              f"about {cpu_used / args.requests * 1000:.0f} "
              f"CPU ms per rescue); {jobs_run} RQ jobs run "
              f"({jobs_run / args.requests:.1f} per rescue, incl. the jobs of drivers' ARRIVED/DONE and payment links)")
        print("  RQ jobs per rescue by function: " + ", ".join(f"{name} {n / args.requests:.1f}"
                                                          for name, n in by_func.most_common()))
        return 0
    finally:
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        driver_pool.shutdown(wait=False, cancel_futures=True)
        stack.close()


if __name__ == "__main__":
    sys.exit(main())
