// An independent OAuth 2.0 authorization server (panva/oidc-provider) for calconnect's interop
// test. Listens on 127.0.0.1, a free port; prints "READY port=<port>" once it accepts requests.
// Login and consent are answered automatically, so a cookie-jar HTTP client can follow the 303s.
// Configuration (docs/interop.md explains why): refresh tokens always issued and rotated on
// every use, PKCE S256 required for every client, revocation enabled.
import http from 'node:http';
import Provider from 'oidc-provider';

const REDIRECT_URI = 'http://127.0.0.1:9/callback';

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

const common = {
  redirect_uris: [REDIRECT_URI],
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
  findAccount: async (ctx, id) => ({ accountId: id, claims: async () => ({ sub: id }) }),
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  cookies: { keys: ['calconnect-interop-cookie-key'] },
});

const handle = provider.callback();
server.on('request', async (req, res) => {
  if (!req.url.startsWith('/interaction/')) {
    handle(req, res);
    return;
  }
  try {
    const details = await provider.interactionDetails(req, res);
    const { prompt, params, session } = details;
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
