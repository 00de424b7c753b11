"""Put on PYTHONPATH only by bench/rescue_cost.py, for a baseline tree whose code does not
count its MongoDB commands itself: registers, in every process that has the multi-process
Prometheus directory, a pymongo listener counting into the same metric the service's own
`MongoOpCounter` uses, so both trees are counted the same way. Not imported by the service."""
import os

if os.environ.get("PROMETHEUS_MULTIPROC_DIR") and os.environ.get("SC_BENCH_COUNT_MONGO"):
    from prometheus_client import Counter
    from pymongo import monitoring

    _OPS = Counter("supportcarr_mongo_ops_total", "MongoDB commands sent", ["command", "collection"])

    class _Count(monitoring.CommandListener):
        def started(self, event):
            target = event.command.get(event.command_name)
            _OPS.labels(event.command_name, target if isinstance(target, str) else "").inc()

        def succeeded(self, event):
            pass

        def failed(self, event):
            pass

    monitoring.register(_Count())
