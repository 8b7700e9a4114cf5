import { broker, BrokerError } from "./calconnect.js";

// Any Cal.com API v2 call through the broker: it adds the user's token (refreshing and
// retrying once on 401) and the route's cal-api-version. Cal.com's answer comes back as is.
export async function calGet(connectionId: string, path: string): Promise<unknown> {
  const { data, error, response } = await broker.GET("/api/v1/connections/{id}/proxy/{path}", {
    params: { path: { id: connectionId, path } }, // path: "me", "schedules/default", …
  });
  if (error) {
    const body = error as { error?: { code?: string; message?: string } };
    throw new BrokerError(`GET ${path}`, String(body.error?.code ?? response.status), body.error?.message ?? "");
  }
  return (data as { data: unknown }).data; // Cal.com's envelope: {"status": "success", "data": …}
}
