from calconnect import call


# Your user pressed "Connect Cal.com": ask the broker for a connect link and redirect the
# user's browser to it. `return_to` is your page the browser comes back to.
def connect_link(end_user_id, return_to):
    session = call("POST", "/api/v1/connect-sessions",
                   {"end_user_id": end_user_id, "return_to": return_to})
    return session["connect_url"]  # respond 303 with Location: session["connect_url"]
