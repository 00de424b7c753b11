"""What one complete rescue costs the stores and the CPU.

Plays one whole rescue N times in a row against the real service (`python app.py`: gunicorn
+ RQ workers, embedded Redis and nx-27017), texted as phones do through the local fake
Twilio and paid through the local fake Stripe with a signed event: the rider texts a place
and problem, `skip` and `y`; the driver answers the offer `Y`, then `ARRIVED`, then `DONE`;
the payment link comes; Stripe reports it paid; the receipt comes. Per rescue it prints:

- MongoDB operations: commands pymongo sent, from the service's own counter
  (`supportcarr_mongo_ops_total`, read from the multi-process Prometheus files, so reading
  costs the stores nothing);
- Redis commands: `INFO commandstats` on the server before and after (every client, RQ's
  included; the bench's own INFO calls left out), and the service's own counter beside it;
- CPU ms: utime + stime of `python app.py` and its descendants (gunicorn, the RQ workers and
  their schedulers, the launcher), and the same with the two stores added. The bench starts
  the stores itself and hands their URLs to `python app.py`, so they are not its descendants;
  they are found by redis-server's own pid and nx-27017's data directory. `python app.py`
  alone starts them as its own processes, so the target is judged on the figure with them.

Each figure has the rate of an idle stretch measured just before (sweeper, heartbeats,
RQ's maintenance) subtracted for the same length of time.

The baseline is the same play against another tree of this repository (`--baseline-tree`,
e.g. a `git worktree` of the commit before a change), measured in the same run, rounds
alternating. A tree without the MongoDB counter is counted by `bench/_baseline_hook`, a
pymongo listener feeding the same metric. The run fails if nx-27017's log gains a line
about a query it could not answer in SQL (`fallback`) while the tree under test runs.

    .venv/bin/python bench/rescue_cost.py [--rescues 5] [--rounds 3] [--baseline-tree /tmp/base]
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
import psutil
import redis
from _harness import ROOT, Numbers, Stack, machine_line, text
from prometheus_client import CollectorRegistry
from prometheus_client import multiprocess as prom_multiprocess

from tests.conftest import STRIPE_KEY, STRIPE_WEBHOOK_SECRET, post_stripe_event, stripe_event
from tests.fakes.stripe_api import FakeStripe

HOOK = Path(__file__).resolve().parent / "_baseline_hook"
CODE_RE = re.compile(r"R\d{4,}")
TARGETS = {"mongo": 40, "redis": 200, "cpu_all_ms": 150}  # cpu_all_ms: the stores counted too


@dataclass
class Reading:
    at: float
    mongo: float
    redis_server: float
    redis_own: float
    cpu: dict[int, float]
    stores_cpu: float
    fallbacks: int
    kinds: dict[str, float]


@dataclass
class Tree:
    name: str
    root: Path
    stack: Stack
    stripe: FakeStripe
    base: str
    proc: psutil.Process
    prom: Path
    mongo_log: Path
    redis: redis.Redis
    stores: list[psutil.Process] = field(default_factory=list)
    driver: str = ""
    numbers: Numbers = field(default_factory=Numbers)
    rounds: list[dict[str, float]] = field(default_factory=list)
    fallbacks: int = 0
    kinds: list[dict[str, float]] = field(default_factory=list)

    def read(self) -> Reading:
        registry = CollectorRegistry()
        prom_multiprocess.MultiProcessCollector(registry, path=str(self.prom))
        totals = {"supportcarr_mongo_ops_total": 0.0, "supportcarr_redis_commands_total": 0.0}
        kinds: dict[str, float] = {}
        for metric in registry.collect():
            for sample in metric.samples:
                if sample.name in totals:
                    totals[sample.name] += sample.value
                    kind = "mongo " + " ".join(sample.labels.get(k, "") for k in ("command", "collection"))
                    if sample.name.startswith("supportcarr_redis"):
                        kind = f"redis {sample.labels['command']}"
                    kinds[kind] = kinds.get(kind, 0.0) + sample.value
        stats = self.redis.info("commandstats")
        server = sum(v["calls"] for k, v in stats.items() if k != "cmdstat_info")
        cpu = {}
        for p in [self.proc, *self.proc.children(recursive=True)]:
            try:
                t = p.cpu_times()
                cpu[p.pid] = t.user + t.system
            except psutil.Error:
                pass
        stores_cpu = 0.0
        for p in self.stores:
            try:
                t = p.cpu_times()
                stores_cpu += t.user + t.system
            except psutil.Error:
                pass
        log = self.mongo_log.read_text(errors="replace") if self.mongo_log.exists() else ""
        return Reading(time.time(), totals["supportcarr_mongo_ops_total"], server,
                       totals["supportcarr_redis_commands_total"], cpu, stores_cpu, log.lower().count("fallback"),
                       kinds)


def delta(a: Reading, b: Reading) -> dict[str, float]:
    cpu = sum(b.cpu[pid] - a.cpu.get(pid, 0.0) for pid in b.cpu)
    stores = b.stores_cpu - a.stores_cpu
    return {"seconds": b.at - a.at, "mongo": b.mongo - a.mongo, "redis": b.redis_server - a.redis_server,
            "redis_own": b.redis_own - a.redis_own, "cpu_ms": cpu * 1000, "cpu_all_ms": (cpu + stores) * 1000,
            "fallbacks": b.fallbacks - a.fallbacks}


def wait_text(stack: Stack, phone: str, fragment: str, after_count: int, timeout: float = 30) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for t in stack.fake.texts_to(phone)[after_count:]:
            if fragment in t.body:
                return t.body
        time.sleep(0.005)
    raise TimeoutError(f"no {fragment!r} to {phone}: {[t.body for t in stack.fake.texts_to(phone)]}")


def ask(tree: Tree, client: httpx.Client, phone: str, body: str, fragment: str) -> str:
    seen = len(tree.stack.fake.texts_to(phone))
    text(tree.base, phone, body, client)
    return wait_text(tree.stack, phone, fragment, seen)


def settle(tree: Tree, quiet: float = 1.0, timeout: float = 30) -> None:
    """Until nothing new has reached the fake Twilio for `quiet` s (the rescue's texts are all out)."""
    t0, last, changed = time.time(), len(tree.stack.fake.sent), time.time()
    while time.time() - t0 < timeout and time.time() - changed < quiet:
        time.sleep(0.05)
        if len(tree.stack.fake.sent) != last:
            last, changed = len(tree.stack.fake.sent), time.time()


def one_rescue(tree: Tree, client: httpx.Client) -> None:
    rider, driver, fake = tree.numbers.next(), tree.driver, tree.stack.fake
    ask(tree, client, rider, "flat tire at Union Square", "")
    ask(tree, client, rider, "skip", "")
    seen_driver = len(fake.texts_to(driver))
    booked = ask(tree, client, rider, "y", "R")
    code = CODE_RE.search(booked).group(0)
    wait_text(tree.stack, driver, f"offer {code}", seen_driver)
    seen_rider = len(fake.texts_to(rider))
    ask(tree, client, driver, "Y", code)
    wait_text(tree.stack, rider, "on the way", seen_rider)
    ask(tree, client, driver, "ARRIVED", "arrived")
    seen_rider = len(fake.texts_to(rider))
    ask(tree, client, driver, "DONE", "complete")
    link = wait_text(tree.stack, rider, "Pay $", seen_rider)
    session_id = re.search(r"https://\S+", link).group(0).rsplit("/", 1)[1]
    session = tree.stripe.sessions[session_id]
    paid = {**session, "payment_status": "paid", "status": "complete", "payment_intent": "pi_" + session_id[-20:]}
    seen_rider = len(fake.texts_to(rider))
    hook = f"{tree.base}/stripe/webhook"
    r = post_stripe_event(lambda payload, headers: client.post(hook, content=payload, headers=headers),
                          stripe_event("checkout.session.completed", paid))
    assert r.status_code == 200, r.text
    wait_text(tree.stack, rider, "Receipt:", seen_rider)


def store_processes(stack: Stack, client: redis.Redis) -> list[psutil.Process]:
    """The two stores the bench's Stack started for a tree (as `python app.py` alone would):
    redis-server by the pid it reports, nx-27017 by its data directory on its command line."""
    found = [psutil.Process(int(client.info("server")["process_id"]))]
    data = str(stack.data / "mongo")
    for p in psutil.process_iter(["cmdline"]):
        if any(data in part for part in p.info["cmdline"] or []):
            found.append(p)
    return found


def start_tree(name: str, root: Path, seed: int) -> Tree:
    stack = Stack(prefix=f"sc-bench-cost-{name}-")
    stripe = FakeStripe(STRIPE_KEY).start()
    prom = stack.data / "prometheus"
    prom.mkdir(parents=True, exist_ok=True)
    env = stack.env(STRIPE_SECRET_KEY=STRIPE_KEY, STRIPE_WEBHOOK_SECRET=STRIPE_WEBHOOK_SECRET,
                    STRIPE_API_BASE=stripe.url, PROMETHEUS_MULTIPROC_DIR=str(prom), SC_BENCH_COUNT_MONGO="")
    if not (root / "dispatch" / "adapters" / "metrics.py").read_text().count("MongoOpCounter"):
        env.update(PYTHONPATH=str(HOOK), SC_BENCH_COUNT_MONGO="1")
    proc = stack.start_app(env, cwd=root)
    tree = Tree(name, root, stack, stripe, env["PUBLIC_BASE_URL"], psutil.Process(proc.pid), prom,
                stack.data / "mongo" / "nx-27017.log", redis.Redis.from_url(stack.redis_url), numbers=Numbers(seed))
    tree.stores = store_processes(stack, tree.redis)
    tree.driver = tree.numbers.next()
    with httpx.Client(timeout=30) as client:
        auth = {"Authorization": f"Bearer {env['ADMIN_TOKEN']}"}
        r = client.post(f"{tree.base}/api/drivers", headers=auth,
                        json={"phone": tree.driver, "name": "Ann Lee", "vehicle": "Van"})
        assert r.status_code == 201, r.text
        ask(tree, client, tree.driver, "ON", "")
        ask(tree, client, tree.driver, "Union Square", "")
        one_rescue(tree, client)  # warm-up: first imports, connections, templates
    settle(tree)
    return tree


def measure_round(tree: Tree, rescues: int, idle_seconds: float) -> dict[str, float]:
    a = tree.read()
    time.sleep(idle_seconds)
    b = tree.read()
    idle = delta(a, b)
    with httpx.Client(timeout=30) as client:
        for _ in range(rescues):
            one_rescue(tree, client)
    settle(tree)
    c = tree.read()
    busy = delta(b, c)
    scale = busy["seconds"] / idle["seconds"]
    tree.fallbacks += int(busy["fallbacks"])
    per = {k: (busy[k] - idle[k] * scale) / rescues for k in ("mongo", "redis", "redis_own", "cpu_ms", "cpu_all_ms")}
    tree.kinds.append({k: (c.kinds.get(k, 0) - b.kinds.get(k, 0)) / rescues for k in c.kinds})
    per.update(seconds=busy["seconds"] / rescues, idle_cpu_ms_per_s=idle["cpu_ms"] / idle["seconds"],
               idle_redis_per_s=idle["redis"] / idle["seconds"], fallbacks=busy["fallbacks"])
    tree.rounds.append(per)
    return per


def summary(tree: Tree) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in tree.rounds) for k in tree.rounds[0]}


def line(name: str, s: dict[str, float]) -> str:
    return (f"{name:9s} mongo ops {s['mongo']:7.1f}   redis commands {s['redis']:7.1f} "
            f"(own counter {s['redis_own']:7.1f})   cpu {s['cpu_ms']:4.0f} ms "
            f"(with the stores {s['cpu_all_ms']:4.0f})   {s['seconds']:5.2f} s/rescue   "
            f"fallback lines {s['fallbacks']:.0f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rescues", type=int, default=5, help="rescues per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--idle", type=float, default=5.0, help="idle seconds measured before each round")
    ap.add_argument("--baseline-tree", type=Path, help="another checkout of this repository to compare with")
    ap.add_argument("--breakdown", action="store_true", help="print the counts by command and collection")
    ap.add_argument("--json", type=Path, help="write the figures here too")
    args = ap.parse_args()
    print(machine_line(), flush=True)
    trees: list[Tree] = []
    try:
        if args.baseline_tree:
            trees.append(start_tree("baseline", args.baseline_tree.resolve(), seed=11))
        trees.append(start_tree("this tree", ROOT, seed=12))
        for i in range(args.rounds):
            for tree in trees if i % 2 == 0 else reversed(trees):
                print(f"round {i + 1} {line(tree.name, measure_round(tree, args.rescues, args.idle))}", flush=True)
        print(f"\nper complete rescue, median of {args.rounds} rounds of {args.rescues}:")
        results = {tree.name: summary(tree) for tree in trees}
        for tree in trees:
            print(line(tree.name, results[tree.name]))
            spread = {k: (min(r[k] for r in tree.rounds), max(r[k] for r in tree.rounds))
                      for k in ("mongo", "redis", "cpu_ms", "cpu_all_ms")}
            print("          spread over rounds: "
                  + ", ".join(f"{k} {lo:.0f}-{hi:.0f}" for k, (lo, hi) in spread.items()))
        if args.breakdown:
            for tree in trees:
                last = sorted(tree.kinds[-1].items(), key=lambda kv: -kv[1])
                print(f"{tree.name}, last round, per rescue (idle not subtracted): "
                      + ", ".join(f"{k} {v:.1f}" for k, v in last if v >= 0.5))
        if args.baseline_tree:
            base, this = results["baseline"], results["this tree"]
            print("this tree / baseline: " + ", ".join(
                f"{k} {this[k] / base[k]:.2f}x" for k in ("mongo", "redis", "cpu_ms", "cpu_all_ms") if base[k]))
        this = results["this tree"]
        print("targets: " + ", ".join(f"{k} <= {v}: {'met' if this[k] <= v else 'MISSED'}"
                                      for k, v in TARGETS.items()))
        if args.json:
            args.json.write_text(json.dumps({"results": results, "rounds": {t.name: t.rounds for t in trees}},
                                            indent=2))
        if trees[-1].fallbacks:
            log = trees[-1].mongo_log.read_text(errors="replace")
            lines = [ln for ln in log.splitlines() if "fallback" in ln.lower()]
            print(f"FAIL: nx-27017 fell back to Python {trees[-1].fallbacks} times while this tree ran; last lines:")
            for ln in lines[-5:]:
                print(f"  {ln[:400]}")
            return 1
        return 0
    finally:
        for tree in trees:
            tree.stack.close()
            tree.stripe.stop()


if __name__ == "__main__":
    sys.exit(main())
