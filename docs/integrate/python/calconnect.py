"""The broker's JSON API with the standard library only (urllib)."""
import json
import os
import urllib.error
import urllib.parse
import urllib.request

BROKER = os.environ["CALCONNECT_URL"]  # e.g. http://127.0.0.1:8080
API_KEY = os.environ["CALCONNECT_API_KEY"]


class BrokerError(Exception):
    """The broker's (or, through the proxy, Cal.com's) {"error": {"code", "message"}}."""

    def __init__(self, status, code, message):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code = status, code


def call(method, path, body=None, query=None):
    url = BROKER + path + ("?" + urllib.parse.urlencode(query) if query else "")
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {API_KEY}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=70) as response:
            text = response.read()
            return json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        try:
            error = json.loads(e.read()).get("error", {})
        except ValueError:
            error = {}
        raise BrokerError(e.code, error.get("code", "error"), error.get("message", "")) from None
