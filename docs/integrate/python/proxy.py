from calconnect import call


# Any Cal.com API v2 call through the broker: it adds the user's token (refreshing and
# retrying once on 401) and the route's cal-api-version. Cal.com's answer comes back as is.
def cal_get(connection_id, path, query=None):  # path: "me", "schedules/default", …
    answer = call("GET", f"/api/v1/connections/{connection_id}/proxy/{path}", query=query)
    return answer["data"]  # Cal.com's envelope: {"status": "success", "data": …}
