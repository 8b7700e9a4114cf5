import hashlib
import hmac
import json
import time
from http.server import BaseHTTPRequestHandler


def verify(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    t, signatures = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            t = value
        elif key == "v1":
            signatures.append(value)
    if t is None or not t.isdigit() or abs(time.time() - int(t)) > tolerance:
        return False  # no timestamp, or more than five minutes away: refuse
    expected = hmac.new(secret.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, s) for s in signatures)


# The receiver (http.server; in Flask use request.get_data(), in Django request.body).
# Answer 2xx only once the event is handled: the broker retries anything else. Deliveries are
# at least once, so skip an event id you have already handled.
def webhook_handler(secret, on_event):
    handled = set()  # in your database, in a real app

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if not verify(secret, self.headers.get("calconnect-signature", ""), body):
                self.send_response(401)
                self.end_headers()
                return
            event = json.loads(body)
            if event["id"] not in handled:
                on_event(event)
                handled.add(event["id"])
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    return Handler
