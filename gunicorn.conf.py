"""gunicorn reads this file from the working directory (the Procfile names it too): wrong
settings stop the server at once with one line, before any worker boots and fails."""
from dispatch.config import settings_or_exit


def on_starting(server) -> None:
    settings_or_exit()
