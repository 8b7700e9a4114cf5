import { createHmac, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { components } from "./calconnect-api.js";

// Checks a delivery's `calconnect-signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…]` against
// your secret: one v1 must be HMAC-SHA256(secret, "<t>.<raw body>"), and t within five minutes
// of now. Hash the raw bytes received, before parsing the JSON.
export function verifySignature(secret: string, header: string, rawBody: Buffer, toleranceSecs = 300): boolean {
  let t: string | undefined;
  const signatures: string[] = [];
  for (const part of header.split(",")) {
    const [key, value] = part.trim().split("=", 2);
    if (key === "t") t = value;
    else if (key === "v1" && value) signatures.push(value);
  }
  if (!t || !/^\d+$/.test(t) || Math.abs(Date.now() / 1000 - Number(t)) > toleranceSecs) {
    return false; // no timestamp, or more than five minutes away: refuse
  }
  const expected = createHmac("sha256", secret).update(`${t}.`).update(rawBody).digest();
  return signatures.some((s) => {
    const given = Buffer.from(s, "hex");
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}

/** A webhook event (`connection.created`, `connection.needs_reauth`, …, `webhook.test`), as the
 * broker's OpenAPI document describes it. */
export type CalconnectEvent = components["schemas"]["WebhookEvent"];

// The receiver (node:http; with Express use express.raw({ type: "application/json" })).
// Answer 2xx only once the event is handled: the broker retries anything else. Deliveries are
// at least once, so skip an event id you have already handled.
export function webhookHandler(secret: string, onEvent: (event: CalconnectEvent) => Promise<void>) {
  const handled = new Set<string>(); // in your database, in a real app
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const rawBody = Buffer.concat(chunks);
    const signature = req.headers["calconnect-signature"];
    if (typeof signature !== "string" || !verifySignature(secret, signature, rawBody)) {
      res.writeHead(401).end();
      return;
    }
    const event = JSON.parse(rawBody.toString("utf8")) as CalconnectEvent;
    if (!handled.has(event.id)) {
      await onEvent(event);
      handled.add(event.id);
    }
    res.writeHead(204).end();
  };
}
