"""Runs the snippets from the command line, for the broker's test suite
(crates/calconnect-broker/tests/broker/integrate.rs), which drives a whole flow against a real
broker with them:

  python3 run.py connect END_USER_ID RETURN_TO    -> the connect URL
  python3 run.py finish RETURN_URL SIGNED_IN_USER -> the connection id
  python3 run.py token CONNECTION_ID              -> {"token": ..., "expires_at": ...}
  python3 run.py get CONNECTION_ID PATH           -> Cal.com's `data`, as JSON
  python3 run.py receive                          -> "listening http://127.0.0.1:PORT/hook", then
                                                     one JSON line per verified event
"""
import json
import os
import sys
import threading
from http.server import ThreadingHTTPServer


def main(command, *args):
    if command == "connect":
        from connect import connect_link
        print(connect_link(*args))
    elif command == "finish":
        from finish import finish_connect
        print(finish_connect(*args))
    elif command == "token":
        from access_token import access_token
        token, expires_at = access_token(*args)
        print(json.dumps({"token": token, "expires_at": expires_at}))
    elif command == "get":
        from proxy import cal_get
        print(json.dumps(cal_get(*args)))
    elif command == "receive":
        from webhook import webhook_handler
        handler = webhook_handler(os.environ["CALCONNECT_WEBHOOK_SECRET"],
                                  lambda event: print(json.dumps(event), flush=True))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        print(f"listening http://127.0.0.1:{server.server_address[1]}/hook", flush=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        sys.stdin.read()  # the test closes stdin to stop it
        server.shutdown()
    else:
        raise SystemExit(f"unknown command {command}: connect, finish, token, get or receive")


if __name__ == "__main__":
    main(*sys.argv[1:])
