from calconnect import call


# A fresh access token for the user's Cal.com account (refreshed by the broker when close to
# expiry), for code that calls Cal.com itself. Do not cache it past `expires_at`.
# A BrokerError with code "connection_needs_reauth" (409): send the user through a new link.
def access_token(connection_id):
    fresh = call("POST", f"/api/v1/connections/{connection_id}/access-token")
    return fresh["access_token"], fresh["expires_at"]
