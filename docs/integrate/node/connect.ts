import { broker, BrokerError } from "./calconnect.js";

// Your user pressed "Connect Cal.com": ask the broker for a connect link and redirect the
// user's browser to it. `returnTo` is your page the browser comes back to.
export async function connectLink(endUserId: string, returnTo: string): Promise<string> {
  const { data, error } = await broker.POST("/api/v1/connect-sessions", {
    body: { end_user_id: endUserId, return_to: returnTo },
  });
  if (error) throw new BrokerError("connect session", error.error.code, error.error.message);
  return data.connect_url; // respond 303 with Location: data.connect_url
}
