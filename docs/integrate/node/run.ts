// Runs the snippets from the command line, for the broker's test suite (crates/calconnect-broker/
// tests/broker/integrate.rs), which drives a whole flow against a real broker with them:
//   node out/run.js connect END_USER_ID RETURN_TO   → the connect URL
//   node out/run.js finish RETURN_URL SIGNED_IN_USER → the connection id
//   node out/run.js token CONNECTION_ID              → {"token": …, "expires_at": …}
//   node out/run.js get CONNECTION_ID PATH           → Cal.com's `data`, as JSON
//   node out/run.js receive                          → "listening http://127.0.0.1:PORT/hook", then
//                                                      one JSON line per verified event
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { connectLink } from "./connect.js";
import { finishConnect } from "./finish.js";
import { calGet } from "./proxy.js";
import { accessToken } from "./token.js";
import { webhookHandler } from "./webhook.js";

const [command, ...args] = process.argv.slice(2);

function arg(i: number, name: string): string {
  const value = args[i];
  if (value === undefined) throw new Error(`${command}: missing ${name}`);
  return value;
}

switch (command) {
  case "connect":
    console.log(await connectLink(arg(0, "END_USER_ID"), arg(1, "RETURN_TO")));
    break;
  case "finish":
    console.log(await finishConnect(new URL(arg(0, "RETURN_URL")), arg(1, "SIGNED_IN_USER")));
    break;
  case "token": {
    const { token, expiresAt } = await accessToken(arg(0, "CONNECTION_ID"));
    console.log(JSON.stringify({ token, expires_at: expiresAt.toISOString() }));
    break;
  }
  case "get":
    console.log(JSON.stringify(await calGet(arg(0, "CONNECTION_ID"), arg(1, "PATH"))));
    break;
  case "receive": {
    const secret = process.env.CALCONNECT_WEBHOOK_SECRET;
    if (!secret) throw new Error("receive: set CALCONNECT_WEBHOOK_SECRET");
    const handler = webhookHandler(secret, async (event) => {
      console.log(JSON.stringify(event));
    });
    const server = createServer((req, res) => {
      handler(req, res).catch(() => res.writeHead(500).end());
    });
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      console.log(`listening http://127.0.0.1:${port}/hook`);
    });
    process.stdin.resume();
    process.stdin.on("end", () => server.close()); // the test closes stdin to stop it
    break;
  }
  default:
    throw new Error(`unknown command ${command ?? "(none)"}: connect, finish, token, get or receive`);
}
