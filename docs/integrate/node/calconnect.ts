// The broker's client, generated from its OpenAPI document:
//   npx openapi-typescript http://127.0.0.1:8080/api/openapi.json -o calconnect-api.d.ts
import createClient from "openapi-fetch";
import type { paths } from "./calconnect-api.js";

export const broker = createClient<paths>({
  baseUrl: process.env.CALCONNECT_URL, // e.g. http://127.0.0.1:8080
  headers: { Authorization: `Bearer ${process.env.CALCONNECT_API_KEY}` },
});

/** The broker's `{error: {code, message}}`, as an exception. */
export class BrokerError extends Error {
  constructor(what: string, readonly code: string, message: string) {
    super(`${what}: ${code}: ${message}`);
  }
}
