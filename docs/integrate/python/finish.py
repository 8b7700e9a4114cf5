import urllib.parse

from calconnect import call


# The browser is back at `return_to` with ?outcome=…&session_id=…&result=…. Redeem `result`
# (once) and check that the flow was finished for the user signed in to your app in this
# browser: a connect link forwarded to someone else must not connect their account to yours.
def finish_connect(return_url, signed_in_user):
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(return_url).query))
    if "session_id" not in query or "result" not in query:
        raise ValueError("not a calconnect return: no session_id or result")
    session_id = urllib.parse.quote(query["session_id"], safe="")
    done = call("GET", f"/api/v1/connect-sessions/{session_id}",
                query={"result": query["result"]})
    if done["end_user_id"] != signed_in_user:
        # Someone else finished this user's link: undo it.
        if done["connection_id"]:
            call("DELETE", f"/api/v1/connections/{done['connection_id']}")
        raise PermissionError("this connect link was finished by another user of the app")
    if not done["connection_id"]:
        raise RuntimeError(f"not connected: {done['outcome']} ({done['error']})")
    return done["connection_id"]  # "created" or "updated": store it with your user
