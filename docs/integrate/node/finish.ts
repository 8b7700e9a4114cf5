import { broker, BrokerError } from "./calconnect.js";

// The browser is back at `returnTo` with ?outcome=…&session_id=…&result=…. Redeem `result`
// (once) and check that the flow was finished for the user signed in to your app in this
// browser: a connect link forwarded to someone else must not connect their account to yours.
export async function finishConnect(returnUrl: URL, signedInUser: string): Promise<string> {
  const sessionId = returnUrl.searchParams.get("session_id");
  const result = returnUrl.searchParams.get("result");
  if (!sessionId || !result) throw new Error("not a calconnect return: no session_id or result");
  const { data, error } = await broker.GET("/api/v1/connect-sessions/{id}", {
    params: { path: { id: sessionId }, query: { result } },
  });
  if (error) throw new BrokerError("connect result", error.error.code, error.error.message);
  if (data.end_user_id !== signedInUser) {
    // Someone else finished this user's link: undo it.
    if (data.connection_id) {
      await broker.DELETE("/api/v1/connections/{id}", {
        params: { path: { id: data.connection_id } },
      });
    }
    throw new Error("this connect link was finished by another user of the app");
  }
  if (!data.connection_id) {
    throw new Error(`not connected: ${data.outcome} (${data.error ?? "no reason given"})`);
  }
  return data.connection_id; // "created" or "updated": store it with your user
}
