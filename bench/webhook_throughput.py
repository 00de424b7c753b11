"""Inbound SMS webhook throughput and latency, and memory after many conversations.

The service's web tier exactly as the Procfile runs it (gunicorn, 2 gthread workers x 8
threads, `app:app`) on embedded Redis + MongoDB-wire stores, with Twilio signature checks
on, takes signed rider texts from many distinct numbers: each conversation is a new number
texting "flat tire at Union Square" (place and problem spotted -> where to?), "skip"
(-> quote) and "n" (no booking), one text after another, as one phone would. The baseline,
measured in the same run under the same gunicorn settings and the same load generator, is
a bare Flask endpoint answering a static TwiML reply (bench/bare_twiml.py). Rounds
alternate bare / service so that background noise hits both alike; medians are reported.

While the throughput is measured only the web tier runs (as on a web dyno: the RQ
workers are other machines in production, and here they would take CPU from the web
workers): the replies' send jobs wait in Redis. Then the memory phase starts the
Procfile's two RQ workers (with the scheduler), drains the backlog to the fake Twilio,
drives more conversations with the workers running until `--conversations` in total, and
reports the resident memory (psutil RSS) of the web and worker processes.

Load: `wrk` when installed (`apt-get install wrk`), else Python threads; C keep-alive
connections, each with one request in flight (closed loop), so latency is measured at
saturation.

    .venv/bin/python bench/webhook_throughput.py [--rounds 2] [--service-conversations 400]
        [--bare-requests 30000] [--connections 16] [--conversations 1000] [--loadgen auto|wrk|python]
    .venv/bin/python bench/webhook_throughput.py --conversations 10000     # the 10k memory figure
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _load
from _harness import Numbers, Stack, machine_line, rss_mb

CONVERSATION = ("flat tire at Union Square", "skip", "n")
TARGET_RPS_RATIO, TARGET_P99_RATIO = 0.30, 4.0
PROFILE_SORT = "tottime"


def conversations(numbers: Numbers, connections: int, per_connection: int) -> list[list[list[tuple[str, str]]]]:
    return [[[(phone, body) for body in CONVERSATION] for phone in (numbers.next() for _ in range(per_connection))]
            for _ in range(connections)]


def lines_for(base: str, convos) -> list[list[str]]:
    return [_load.signed_lines(base, "/twilio/sms", per_conn) for per_conn in convos]


def web_pids(gunicorn_pid: int) -> list[int]:
    import psutil

    return [gunicorn_pid] + [p.pid for p in psutil.Process(gunicorn_pid).children()]


def drain(stack: Stack, env: dict[str, str], timeout: float = 600) -> tuple[int, float]:
    """Wait until no text is left to apply or send (the drains run in the workers' threads, so
    the RQ queues alone do not say it), the queues are empty and the fake Twilio stops
    receiving; (texts, seconds)."""
    import pymongo
    import redis
    from rq import Queue

    messages = pymongo.MongoClient(env["MONGO_URL"])["supportcarr"].messages
    conn = redis.Redis.from_url(env["REDIS_URL"])
    name = env.get("RQ_QUEUE", "default")
    queues = [Queue(f"{name}-urgent", connection=conn), Queue(name, connection=conn)]
    before, t0 = len(stack.fake.sent), time.time()
    last_count, last_change = before, time.time()
    while time.time() - t0 < timeout:
        count = len(stack.fake.sent)
        if count != last_count:
            last_count, last_change = count, time.time()
        if all(q.count == 0 and q.started_job_registry.count == 0 for q in queues) and \
                time.time() - last_change > 0.5 and not messages.find_one(
                    {"$or": [{"direction": "in", "processed": False},
                             {"direction": "out", "status": {"$in": ["pending", "sending"]}}]}, {"_id": 1}):
            break
        time.sleep(0.05)
    return last_count - before, max(1e-9, last_change - t0)


def command_tally():
    """pymongo command monitoring: how many MongoDB round trips one text costs, and how long."""
    from collections import Counter

    from pymongo.monitoring import CommandListener

    class CommandTally(CommandListener):
        def __init__(self) -> None:
            self.count, self.micros = Counter(), Counter()

        def started(self, event) -> None:
            pass

        def succeeded(self, event) -> None:
            self.count[event.command_name] += 1
            self.micros[event.command_name] += event.duration_micros

        def failed(self, event) -> None:
            self.count[event.command_name + " (failed)"] += 1

    return CommandTally()



def profile_one_text(env: dict[str, str], numbers: Numbers, n: int = 10, cprofile: bool = False) -> None:
    """Serial, in this process (Flask test client, same code and stores): MongoDB and Redis
    commands per inbound text and where the time of one text goes. Run while the web tier is idle."""
    import pymongo.monitoring
    import redis
    from _harness import sign, text_params

    tally = command_tally()
    pymongo.monitoring.register(tally)
    from app import create_app
    from dispatch.config import load_settings

    settings = load_settings(env)
    app = create_app(settings)
    client = app.test_client()
    r = redis.Redis.from_url(env["REDIS_URL"])

    def redis_calls() -> int:
        return sum(v["calls"] for k, v in r.info("commandstats").items())

    url = settings.public_base_url + "/twilio/sms"
    params = text_params(numbers.next(), "hi")
    client.post("/twilio/sms", data=params, headers={"X-Twilio-Signature": sign(url, params)})  # warm
    tally.count.clear()
    tally.micros.clear()
    redis_before = redis_calls()
    profiler = None
    if cprofile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    t0 = time.perf_counter()
    texts = 0
    for _ in range(n):
        phone = numbers.next()
        for body in CONVERSATION:
            params = text_params(phone, body)
            resp = client.post("/twilio/sms", data=params, headers={"X-Twilio-Signature": sign(url, params)})
            assert resp.status_code == 200, resp.data
            texts += 1
    wall = (time.perf_counter() - t0) / texts * 1000
    if profiler:
        import io
        import pstats

        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(PROFILE_SORT).print_stats(40)
        print(out.getvalue())
    redis_per = (redis_calls() - redis_before - 1) / texts  # less the INFO itself
    mongo_per = sum(tally.count.values()) / texts
    mongo_ms = sum(tally.micros.values()) / texts / 1000
    top = ", ".join(f"{k} {v / texts:.1f}" for k, v in tally.count.most_common(6))
    print(f"one text, serially in-process: {wall:.1f} ms; {mongo_per:.1f} MongoDB round trips ({mongo_ms:.1f} ms "
          f"waiting on nx-27017) and {redis_per:.1f} Redis commands per text")
    print(f"  MongoDB commands per text: {top}")


def cpu_seconds(pids: list[int]) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def snapshot(label: str, web: int, workers: list, stack: Stack) -> dict[str, float]:
    snap = {"web master": rss_mb(web)}
    for i, pid in enumerate(web_pids(web)[1:]):
        snap[f"web worker {i}"] = rss_mb(pid)
    for i, w in enumerate(workers):
        snap[f"rq worker {i}"] = rss_mb(w.pid)
    for child in stack.sup.children:
        snap[f"store: {child.name}"] = rss_mb(child.proc.pid)
    return snap


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2, help="bare/service rounds (medians reported)")
    ap.add_argument("--connections", type=int, default=16,
                    help="concurrent connections (default: 2 workers x 8 threads)")
    ap.add_argument("--service-conversations", type=int, default=400,
                    help="conversations per service round (3 texts each)")
    ap.add_argument("--bare-requests", type=int, default=30000, help="requests per bare round")
    ap.add_argument("--conversations", type=int, default=1000, help="total conversations before the memory reading")
    ap.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    ap.add_argument("--profile", action="store_true", help="print a cProfile of serial in-process texts")
    args = ap.parse_args()
    tool = args.loadgen if args.loadgen != "auto" else ("wrk" if _load.have_wrk() else "python")
    c = args.connections
    per_conn = max(1, args.service_conversations // c)
    print(f"webhook throughput  [{machine_line()}]", flush=True)
    print(f"load generator: {tool}, {c} connections, closed loop; "
          f"{per_conn * c} conversations x {len(CONVERSATION)} texts per service round", flush=True)

    stack = Stack(prefix="sc-bench-webhook-")
    try:
        env = stack.env()
        base = env["PUBLIC_BASE_URL"]
        bare_env = stack.env()
        bare_base = bare_env["PUBLIC_BASE_URL"]
        web = stack.start_gunicorn(env, "app:app", log_name="web.log")
        stack.start_gunicorn(bare_env, "bench.bare_twiml:app", log_name="bare.log")
        numbers = Numbers(seed=1)
        # Sign everything before any clock starts; one warm-up conversation per connection first.
        warm = lines_for(base, conversations(numbers, c, 1))
        rounds = [lines_for(base, conversations(numbers, c, per_conn)) for _ in range(args.rounds)]
        bare_lines = lines_for(bare_base, conversations(Numbers(seed=99), c, 20))
        _load.run(base, warm, len(CONVERSATION), tool)
        _load.run(bare_base, bare_lines, 200, tool)
        early_snap = snapshot("warm-up", web.pid, [], stack)

        import psutil

        web_workers = web_pids(web.pid)[1:]
        stores = {child.name: child.proc.pid for child in stack.sup.children}
        cpu = {"web workers": 0.0, **{f"store: {k}": 0.0 for k in stores}, "rest of the machine": 0.0}
        svc_requests, svc_seconds = 0, 0.0
        bare_results, svc_results = [], []
        for r in range(args.rounds):
            b = _load.run(bare_base, bare_lines, max(1, args.bare_requests // c), tool)
            before = {"web workers": cpu_seconds(web_workers),
                      **{f"store: {k}": cpu_seconds([p]) for k, p in stores.items()}}
            machine_before = psutil.cpu_times()
            s = _load.run(base, rounds[r], per_conn * len(CONVERSATION), tool)
            machine_after = psutil.cpu_times()
            ours = 0.0
            for k, v in before.items():
                spent = cpu_seconds(web_workers if k == "web workers" else [stores[k[7:]]]) - v
                cpu[k] += spent
                ours += spent
            busy = sum(getattr(machine_after, f) - getattr(machine_before, f)
                       for f in ("user", "system", "nice", "irq", "softirq", "steal"))
            cpu["rest of the machine"] += busy - ours  # the load generator and anything else running
            svc_requests += s.requests
            svc_seconds += s.seconds
            bare_results.append(b)
            svc_results.append(s)
            print(f"  round {r + 1}: bare {b.rps:7.0f} req/s p50 {b.p50_ms:6.1f} p99 {b.p99_ms:6.1f} ms | "
                  f"service {s.rps:6.0f} req/s p50 {s.p50_ms:6.1f} p99 {s.p99_ms:7.1f} ms, {s.errors} non-2xx",
                  flush=True)

        def med(results, attr):
            return statistics.median(getattr(x, attr) for x in results)

        brps, sr = med(bare_results, "rps"), med(svc_results, "rps")
        print(f"\nmedians of {args.rounds} rounds      "
              f"{'req/s':>8}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}")
        for name, res in (("bare Flask TwiML (baseline)", bare_results), ("service /twilio/sms", svc_results)):
            print(f"{name:28}{med(res, 'rps'):8.0f}{med(res, 'p50_ms'):9.1f}{med(res, 'p90_ms'):9.1f}"
                  f"{med(res, 'p99_ms'):9.1f}{med(res, 'max_ms'):9.1f}")
        rps_ratio = sr / brps
        p99_ratio = med(svc_results, "p99_ms") / med(bare_results, "p99_ms")
        print(f"throughput service/bare: {rps_ratio:.2f}x   (target >= {TARGET_RPS_RATIO:.2f}x: "
              f"{'met' if rps_ratio >= TARGET_RPS_RATIO else 'MISSED'})")
        print(f"p99 service/bare:        {p99_ratio:.2f}x   (target <= {TARGET_P99_RATIO:.1f}x: "
              f"{'met' if p99_ratio <= TARGET_P99_RATIO else 'MISSED'})")
        print(f"non-2xx answers from the service: {sum(x.errors for x in svc_results)}", flush=True)
        print(f"\nwhere the CPU went during the service rounds ({os.cpu_count()} cores):")
        print(f"  {'':22}{'CPU ms/request':>15}{'cores busy':>12}")
        for k, v in cpu.items():
            print(f"  {k:22}{v / max(1, svc_requests) * 1000:15.2f}{v / max(1e-9, svc_seconds):12.2f}")
        print(f"  {'total':22}{sum(cpu.values()) / max(1, svc_requests) * 1000:15.2f}"
              f"{sum(cpu.values()) / max(1e-9, svc_seconds):12.2f}")
        profile_one_text(env, numbers, cprofile=args.profile)

        # -- memory ----------------------------------------------------------------------------
        import pymongo

        db = pymongo.MongoClient(env["MONGO_URL"])["supportcarr"]
        workers = [stack.start_rq_worker(env, log_name=f"worker{i}.log") for i in range(2)]
        sent, secs = drain(stack, env)
        print(f"\nmemory: 2 RQ workers drained the backlog: {sent} texts in {secs:.1f} s ({sent / secs:.0f}/s)")
        done = db.conversations.count_documents({})
        warm_snap = snapshot("warm", web.pid, workers, stack)
        remaining = max(0, args.conversations - done)
        mem_load = None
        if remaining:
            per = max(1, remaining // c)
            more = lines_for(base, conversations(numbers, c, per))
            mem_load = _load.run(base, more, per * len(CONVERSATION), tool)
            sent2, secs2 = drain(stack, env)
        total = db.conversations.count_documents({})
        end_snap = snapshot("end", web.pid, workers, stack)
        print(f"conversations: {done} after the throughput rounds, {total} at the end")
        if mem_load:
            print(f"  (the last {total - done} with the 2 RQ workers running beside the web tier: "
                  f"{mem_load.rps:.0f} req/s, p99 {mem_load.p99_ms:.0f} ms, {mem_load.errors} non-2xx)")
        print("resident memory (MB) after n conversations:")
        print(f"{'process':18}{'n=' + str(c):>9}{'n=' + str(done):>9}{'n=' + str(total):>9}{'growth':>9}")
        for name in end_snap:
            first = early_snap.get(name, warm_snap.get(name, float("nan")))
            e = f"{early_snap[name]:9.1f}" if name in early_snap else f"{'-':>9}"
            print(f"{name:18}{e}{warm_snap.get(name, float('nan')):9.1f}{end_snap[name]:9.1f}"
                  f"{end_snap[name] - first:+9.1f}")
        print("(the RQ workers start after the throughput rounds: their first reading is after draining that backlog)")
        web_total = sum(v for k, v in end_snap.items() if k.startswith("web"))
        rq_total = sum(v for k, v in end_snap.items() if k.startswith("rq"))
        print(f"web processes total {web_total:.0f} MB, RQ workers total {rq_total:.0f} MB after {total} conversations")
        return 0
    finally:
        stack.close()


if __name__ == "__main__":
    sys.exit(main())
