"""The baseline for bench/webhook_throughput.py: a bare Flask endpoint that answers every
POST /twilio/sms with a static empty TwiML reply. No signature check, no stores.

    gunicorn --workers 2 --worker-class gthread --threads 8 bench.bare_twiml:app
"""
from flask import Flask, Response

TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'

app = Flask(__name__)


@app.post("/twilio/sms")
def sms():
    return Response(TWIML, mimetype="text/xml")


@app.get("/")
def index():
    return "ok"
