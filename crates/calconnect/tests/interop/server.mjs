// An independent OAuth 2.0 authorization server (panva/oidc-provider) for calconnect's interop
// tests (the library's, and `calconnect login --profile custom` run as a binary). Listens on
// 127.0.0.1, a free port; prints "READY port=<port>" once it accepts requests. Login and consent
// are answered automatically, so a cookie-jar HTTP client can follow the 303s.
// Configuration (docs/interop.md explains why): opaque access tokens (no resource indicators, so
// oidc-provider issues opaque ones), refresh tokens always issued and rotated on every use, PKCE
// S256 required for every client, revocation, introspection and userinfo enabled.
//
// Environment: REDIRECT_URIS (comma-separated, registered for every client besides the fixed
// one), ACCESS_TOKEN_TTL (seconds, default 3600).
//
// Test-only routes (not OAuth; the tests' switches and a resource server):
//   GET  /api/whoami         a resource route: 200 {sub, client_id, scope} for an active bearer
//                            access token, else 401 with WWW-Authenticate (RFC 6750 §3)
//   POST /__test/deny        the next consent is denied (error=access_denied to the client)
//   POST /__test/drop-token  the next POST /token has its connection closed unanswered
//   GET  /__test/stats       counters: grants by type, refresh tokens consumed (rotation) and
//                            destroyed (revocation), grants revoked
import http from 'node:http';
import Provider from 'oidc-provider';

const REDIRECT_URI = 'http://127.0.0.1:9/callback';
const extraRedirectUris = (process.env.REDIRECT_URIS ?? '').split(',').filter((u) => u);
const accessTokenTtl = Number(process.env.ACCESS_TOKEN_TTL ?? 3600);

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

const common = {
  redirect_uris: [REDIRECT_URI, ...extraRedirectUris],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
};

const provider = new Provider(issuer, {
  clients: [
    { ...common, client_id: 'conf-post', client_secret: 'conf-post-secret-0123456789abcdef', token_endpoint_auth_method: 'client_secret_post' },
    { ...common, client_id: 'conf-basic', client_secret: 'conf basic:secret/0123456789abcdef', token_endpoint_auth_method: 'client_secret_basic' },
    { ...common, client_id: 'public', token_endpoint_auth_method: 'none' },
  ],
  scopes: ['openid', 'offline_access'],
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
    revocation: { enabled: true },
    introspection: { enabled: true },
  },
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: true,
  ttl: { AccessToken: accessTokenTtl },
  findAccount: async (ctx, id) => ({ accountId: id, claims: async () => ({ sub: id }) }),
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  cookies: { keys: ['calconnect-interop-cookie-key'] },
});

const stats = { grants: {}, refresh_token_consumed: 0, refresh_token_destroyed: 0, access_token_destroyed: 0, grant_revoked: 0 };
provider.on('grant.success', (ctx) => {
  const type = ctx.oidc.params.grant_type;
  stats.grants[type] = (stats.grants[type] ?? 0) + 1;
});
provider.on('refresh_token.consumed', () => { stats.refresh_token_consumed += 1; });
provider.on('refresh_token.destroyed', () => { stats.refresh_token_destroyed += 1; });
provider.on('access_token.destroyed', () => { stats.access_token_destroyed += 1; });
provider.on('grant.revoked', () => { stats.grant_revoked += 1; });
let denyNext = false;
let dropTokenRequests = 0;

function json(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
  res.end(JSON.stringify(body));
}

async function whoami(req, res) {
  const match = /^Bearer (\S+)$/i.exec(req.headers.authorization ?? '');
  const token = match ? await provider.AccessToken.find(match[1]) : undefined;
  if (!token || !token.isValid) {
    json(res, 401, { error: 'invalid_token' }, { 'www-authenticate': 'Bearer error="invalid_token"' });
    return;
  }
  json(res, 200, { sub: token.accountId, client_id: token.clientId, scope: token.scope });
}

const handle = provider.callback();
server.on('request', async (req, res) => {
  const path = req.url.split('?')[0];
  if (req.method === 'POST' && path === '/__test/deny') {
    denyNext = true;
    json(res, 200, {});
    return;
  }
  if (req.method === 'POST' && path === '/__test/drop-token') {
    dropTokenRequests += 1;
    json(res, 200, {});
    return;
  }
  if (req.method === 'GET' && path === '/__test/stats') {
    json(res, 200, stats);
    return;
  }
  if (req.method === 'GET' && path === '/api/whoami') {
    await whoami(req, res);
    return;
  }
  if (req.method === 'POST' && path === '/token' && dropTokenRequests > 0) {
    // "The provider went down mid-refresh": the request arrived, no answer ever comes.
    dropTokenRequests -= 1;
    req.socket.destroy();
    return;
  }
  if (!req.url.startsWith('/interaction/')) {
    handle(req, res);
    return;
  }
  try {
    const details = await provider.interactionDetails(req, res);
    const { prompt, params, session } = details;
    if (prompt.name === 'consent' && denyNext) {
      denyNext = false;
      await provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'End-User denied the request' }, { mergeWithLastSubmission: false });
      return;
    }
    if (prompt.name === 'login') {
      await provider.interactionFinished(req, res, { login: { accountId: 'interop-user' } }, { mergeWithLastSubmission: false });
      return;
    }
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(prompt.details.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  } catch (err) {
    res.statusCode = 500;
    res.end(`interaction failed: ${err}`);
  }
});

process.on('SIGTERM', () => process.exit(0));
console.log(`READY port=${port}`);
