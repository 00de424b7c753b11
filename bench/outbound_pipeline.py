"""Outbound texts delivered per second by one worker process, to a Twilio that takes 200 ms.

N texts are queued through the app's own `Outbox.queue_text` (a `messages` document each,
plus a kick that queues one `send_pending` drain job), then ONE worker process runs exactly
as the Procfile's `worker:` line does (`rq worker --worker-class dispatch.worker.Worker`, in
burst mode so it exits when the queue is empty). The drain sends batches of never-tried
texts on a thread pool. The real `twilio` client talks to the local fake Twilio
(tests/fakes/twilio_api.py) with `delay = 0.2` s per send; the fake timestamps each text.

Baseline, same run: the same `TwilioSender.send` called back to back in this process, no
RQ and no MongoDB: the ceiling of any one-text-at-a-time sender against a 200 ms API
(about 1 / 0.2 s = 5/s), which is what one text per job gave before the drain.

    .venv/bin/python bench/outbound_pipeline.py [--texts 640] [--delay 0.2]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Numbers, Stack, machine_line

TARGET_PER_WORKER = 50.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=640, help="texts per measurement")
    ap.add_argument("--delay", type=float, default=0.2, help="fake Twilio's answer time, seconds")
    ap.add_argument("--baseline-texts", type=int, default=10)
    args = ap.parse_args()

    print(f"outbound pipeline  [{machine_line()}]", flush=True)
    print(f"fake Twilio answers each send after {args.delay * 1000:.0f} ms; {args.texts} texts per measurement\n",
          flush=True)
    stack = Stack(twilio_delay=args.delay, prefix="sc-bench-outbound-")
    try:
        env = stack.env(RQ_QUEUE="bench_outbound", MONGO_DB="bench_outbound")
        from dispatch.adapters.logs import setup_logging
        from dispatch.adapters.twilio import TwilioSender
        from dispatch.bootstrap import build_services
        from dispatch.config import load_settings

        settings = load_settings(env)
        setup_logging("WARNING", None, process="bench")
        svc = build_services(settings)
        numbers = Numbers(seed=4)
        fake = stack.fake

        # Baseline: one sender, back to back, no queue, no database.
        sender = TwilioSender(settings)
        sender.send(numbers.next(), "warm-up", None)
        t0 = time.perf_counter()
        for i in range(args.baseline_texts):
            sender.send(numbers.next(), f"baseline {i}", None)
        base_rate = args.baseline_texts / (time.perf_counter() - t0)

        # The app's path: queue_text -> RQ send_text job -> one worker process.
        phones = [numbers.next() for _ in range(args.texts)]
        t0 = time.perf_counter()
        for i, phone in enumerate(phones):
            svc.outbox.queue_text(phone, f"SupportCarr bench text {i}", key=f"bench:{i}", kind="bench")
        queue_secs = time.perf_counter() - t0
        already = len(fake.sent)
        started = time.time()
        worker = stack.start_rq_worker(env, burst=True, scheduler=False, log_name="worker.log")
        worker.wait(timeout=args.texts * (args.delay + 1) + 60)
        sent = [t for t in fake.sent[already:] if t.body.startswith("SupportCarr bench text")]
        assert len(sent) == args.texts, f"{len(sent)} of {args.texts} texts reached the fake"
        first, last = min(t.at for t in sent), max(t.at for t in sent)
        steady = (len(sent) - 1) / (last - first) if len(sent) > 1 else float("nan")
        overall = len(sent) / (last - started)
        gaps = sorted(b.at - a.at for a, b in zip(sent, sent[1:], strict=False))
        jobs = svc.scheduler.queue.finished_job_registry.count  # kept RESULT_TTL (60 s): enough for this run

        print(f"{'':52}{'texts/s':>9}{'x baseline':>12}")
        print(f"{'baseline: TwilioSender.send back to back (no RQ/DB)':52}{base_rate:9.2f}{1:11.2f}x")
        print(f"{'1 RQ worker (dispatch.worker.Worker), steady state':52}{steady:9.2f}{steady / base_rate:11.2f}x")
        print(f"{'1 RQ worker, incl. its start-up':52}{overall:9.2f}{overall / base_rate:11.2f}x")
        print(f"\nthe worker ran {jobs} RQ jobs (the drain itself runs in its thread) for {args.texts} texts; "
              f"median gap between deliveries "
              f"{statistics.median(gaps) * 1000:.1f} ms")
        print(f"queueing {args.texts} texts through Outbox.queue_text took {queue_secs * 1000:.0f} ms "
              f"({queue_secs / args.texts * 1000:.1f} ms each)")
        print(f"target >= {TARGET_PER_WORKER:.0f}/s per worker: {'met' if steady >= TARGET_PER_WORKER else 'MISSED'} "
              f"({steady:.1f}/s)")
        return 0
    finally:
        stack.close()


if __name__ == "__main__":
    sys.exit(main())
