"""A closed-loop HTTP load generator for signed Twilio webhooks (used by webhook_throughput.py).

`wrk` (Debian package `wrk`) when it is installed, else Python threads with keep-alive
`http.client` connections. Either way: C connections, each sending its own list of
pre-signed requests strictly in order (one request in flight per connection), so the texts
of one conversation arrive one after another as they would from one phone. Signing happens
before the clock starts.
"""
from __future__ import annotations

import http.client
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from _harness import pct, sign

WRK_SCRIPT = r"""
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

local reqs, n, i, target, dir = {}, 0, 0, 0, nil
function init(args)
  dir, target = args[1], tonumber(args[2])
  local f = assert(io.open(dir .. "/reqs_" .. id .. ".txt", "r"))
  for line in f:lines() do
    local tab = line:find("\t", 1, true)
    reqs[#reqs + 1] = wrk.format("POST", args[3], {
      ["Host"] = args[4], ["Content-Type"] = "application/x-www-form-urlencoded",
      ["X-Twilio-Signature"] = line:sub(1, tab - 1)}, line:sub(tab + 1))
  end
  f:close()
  n = #reqs
end

function request()
  i = i + 1
  if i > target then
    if i == target + 1 then
      local m = io.open(dir .. "/done_" .. id, "w"); m:write("1"); m:close()
      wrk.thread:stop()
    end
    return reqs[n]
  end
  return reqs[((i - 1) % n) + 1]
end

function done(s, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %d %d %d %.1f %.1f %.1f %.1f\n", s.duration, s.requests,
    s.errors.connect, s.errors.read, s.errors.write, s.errors.status, s.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


@dataclass
class LoadResult:
    tool: str
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def signed_lines(base: str, path: str, conversations: list[list[tuple[str, str]]]) -> list[str]:
    """conversations: [[(from, body), ...], ...] -> 'signature<TAB>urlencoded form' lines, in order."""
    from _harness import text_params

    url = base + path
    lines = []
    for convo in conversations:
        for sender, body in convo:
            params = text_params(sender, body)
            lines.append(f"{sign(url, params)}\t{urlencode(params)}")
    return lines


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def run(base: str, per_connection: list[list[str]], per_connection_count: int, tool: str = "auto",
        path: str = "/twilio/sms", timeout_s: float = 600) -> LoadResult:
    """Each connection sends `per_connection_count` requests from its own line list (cycling
    when the count is longer than the list: only the bare baseline does that)."""
    if tool == "auto":
        tool = "wrk" if have_wrk() else "python"
    if tool == "wrk":
        return _run_wrk(base, per_connection, per_connection_count, path, timeout_s)
    return _run_python(base, per_connection, per_connection_count, path)


def _run_wrk(base, per_connection, count, path, timeout_s) -> LoadResult:
    work = Path(tempfile.mkdtemp(prefix="sc-wrk-"))
    try:
        for i, lines in enumerate(per_connection):
            (work / f"reqs_{i}.txt").write_text("\n".join(lines) + "\n")
        (work / "load.lua").write_text(WRK_SCRIPT)
        host = base.split("://", 1)[1]
        c = len(per_connection)
        cmd = ["wrk", "-t", str(c), "-c", str(c), "-d", f"{int(timeout_s)}s", "--timeout", "30s",
               "-s", str(work / "load.lua"), base, "--", str(work), str(count), path, host]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        deadline = time.time() + timeout_s + 5
        while time.time() < deadline and proc.poll() is None:
            if sum(1 for _ in work.glob("done_*")) >= c:
                break
            time.sleep(0.01)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGINT)  # wrk's own Ctrl-C: stops and prints its summary
        out, _ = proc.communicate(timeout=30)
        line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            raise RuntimeError(f"wrk gave no result: {out[-2000:]}")
        f = line.split()[1:]
        dur_us, reqs = int(f[0]), int(f[1])
        errors = sum(int(x) for x in f[2:7])
        p50, p90, p99, mx = (float(x) / 1000 for x in f[7:11])
        return LoadResult("wrk", reqs, dur_us / 1e6, p50, p90, p99, mx, errors)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run_python(base, per_connection, count, path) -> LoadResult:
    host, port = base.split("://", 1)[1].split(":")
    latencies: list[list[float]] = [[] for _ in per_connection]
    errors = [0] * len(per_connection)
    start = threading.Event()

    def client(idx: int, lines: list[str]) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        parsed = [ln.split("\t", 1) for ln in lines]
        start.wait()
        for k in range(count):
            sig, body = parsed[k % len(parsed)]
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers={
                    "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sig})
                r = conn.getresponse()
                r.read()
                if r.status >= 400:
                    errors[idx] += 1
            except (OSError, http.client.HTTPException):
                errors[idx] += 1
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
            latencies[idx].append(time.perf_counter() - t0)
        conn.close()

    threads = [threading.Thread(target=client, args=(i, lines), daemon=True) for i, lines in enumerate(per_connection)]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    start.set()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    flat = [x * 1000 for xs in latencies for x in xs]
    return LoadResult("python", len(flat), seconds, pct(flat, 50), pct(flat, 90), pct(flat, 99),
                      max(flat) if flat else float("nan"), sum(errors))
