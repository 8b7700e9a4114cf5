import { broker, BrokerError } from "./calconnect.js";

// A fresh access token for the user's Cal.com account (refreshed by the broker when close to
// expiry), for code that calls Cal.com itself. Do not cache it past `expires_at`.
export async function accessToken(connectionId: string): Promise<{ token: string; expiresAt: Date }> {
  const { data, error } = await broker.POST("/api/v1/connections/{id}/access-token", {
    params: { path: { id: connectionId } },
  });
  if (error) {
    // 409 connection_needs_reauth: send the user through a new connect link.
    throw new BrokerError("access token", error.error.code, error.error.message);
  }
  return { token: data.access_token, expiresAt: new Date(data.expires_at) };
}
