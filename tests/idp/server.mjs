// Loopback OpenID provider for the SOARS test suite, built on the certified
// `oidc-provider` package. Never use it outside tests: keys are throw-away,
// storage is in memory and users log in without a password.
//
// Usage:
//   node server.mjs path/to/config.json
//   node server.mjs --env VAR_NAME        (config JSON held in $VAR_NAME)
//
// Config (JSON):
//   {
//     "port": 0,                            // 0 = any free port (default)
//     "issuer": "http://127.0.0.1:PORT",    // optional; derived from the port
//     "audience": "https://soars.test/api", // API resource identifier
//     "scopes": ["soars.read"],             // API scopes, also offered top-level
//     "access_token_ttl": 300,              // seconds
//     "clients": [{ "client_id": "...", "client_secret": "...",
//                   "grant_types": ["client_credentials"],
//                   "redirect_uris": [], "token_endpoint_auth_method": "..." }],
//     "users": [{ "accountId": "alice", "claims": { "email": "..." } }]
//   }
//
// Prints `READY <issuer>` on stdout once listening; everything else goes to
// stderr. SIGTERM / SIGINT close the server and exit 0.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';

import Provider, { errors } from 'oidc-provider';

const HOST = '127.0.0.1';

function loadConfig(argv) {
  if (argv[0] === '--env') {
    const raw = process.env[argv[1] ?? ''];
    if (!raw) throw new Error(`config env var ${argv[1]} is empty or unset`);
    return JSON.parse(raw);
  }
  if (!argv[0]) throw new Error('usage: node server.mjs CONFIG.json | --env VAR');
  return JSON.parse(fs.readFileSync(argv[0], 'utf8'));
}

// Fresh signing keys on every start; nothing is written to disk.
function generateJwks() {
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  return {
    keys: [
      // First RS256 key is what id tokens and JWT access tokens are signed with.
      { ...rsa.export({ format: 'jwk' }), kid: `rs256-${crypto.randomUUID()}`, alg: 'RS256', use: 'sig' },
      { ...ec.export({ format: 'jwk' }), kid: `es256-${crypto.randomUUID()}`, alg: 'ES256', use: 'sig' },
    ],
  };
}

// Translate our small client description into OAuth client metadata.
function clientMetadata(c) {
  const grantTypes = c.grant_types ?? ['client_credentials'];
  const usesCode = grantTypes.includes('authorization_code');
  const meta = {
    client_id: c.client_id,
    grant_types: grantTypes,
    response_types: usesCode ? ['code'] : [],
    redirect_uris: c.redirect_uris ?? [],
    token_endpoint_auth_method:
      c.token_endpoint_auth_method ?? (c.client_secret ? 'client_secret_basic' : 'none'),
  };
  if (c.client_secret) meta.client_secret = c.client_secret;
  if (c.scope) meta.scope = c.scope;
  if (c.post_logout_redirect_uris) meta.post_logout_redirect_uris = c.post_logout_redirect_uris;
  return meta;
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

async function main() {
  const cfg = loadConfig(process.argv.slice(2));
  if (!cfg.audience) throw new Error('config.audience is required');
  const apiScopes = cfg.scopes ?? [];
  const ttl = cfg.access_token_ttl ?? 300;
  const users = new Map((cfg.users ?? []).map((u) => [u.accountId, u.claims ?? {}]));

  // Listen first (port 0 allowed), so the issuer can carry the real port and
  // the caller never races another process for a "free" port.
  const server = http.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.port ?? 0, HOST, resolve);
  });
  const { port } = server.address();
  const issuer = cfg.issuer ?? `http://${HOST}:${port}`;

  const provider = new Provider(issuer, {
    clients: (cfg.clients ?? []).map(clientMetadata),
    jwks: generateJwks(),
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    // Top-level scopes must include the API scopes or the provider drops them.
    scopes: ['openid', 'offline_access', ...apiScopes],
    claims: {
      openid: ['sub'],
      profile: ['name', 'given_name', 'family_name', 'preferred_username'],
      email: ['email', 'email_verified'],
    },
    responseTypes: ['code', 'none'], // no implicit/hybrid flows
    pkce: { required: () => true },
    ttl: {
      AccessToken: ttl,
      ClientCredentials: ttl,
      AuthorizationCode: 60,
      IdToken: ttl,
      Interaction: 600,
      Grant: 3600,
      Session: 3600,
    },
    features: {
      devInteractions: { enabled: false }, // replaced by /interaction/:uid below
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // Auth-code flow: the token request may omit `resource` and get the
        // one granted at the authorization endpoint.
        useGrantedResource: () => true,
        getResourceServerInfo(ctx, resourceIndicator) {
          if (resourceIndicator !== cfg.audience) throw new errors.InvalidTarget();
          return {
            audience: cfg.audience,
            scope: apiScopes.join(' '),
            accessTokenTTL: ttl,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    async findAccount(ctx, sub) {
      if (!users.has(sub)) return undefined;
      return {
        accountId: sub,
        async claims() {
          return { ...users.get(sub), sub };
        },
      };
    },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  });

  // Dev-only interaction: GET /interaction/<uid>?login=<accountId> signs the
  // user in; consent is granted automatically for whatever was requested.
  async function interaction(req, res, url) {
    const details = await provider.interactionDetails(req, res);
    const { prompt, params } = details;

    if (prompt.name === 'login') {
      const accountId = url.searchParams.get('login');
      if (!accountId) {
        // No account picked: list the test users as links (handy in a browser).
        const links = [...users.keys()].map((id) => {
          const href = `${url.pathname}?login=${encodeURIComponent(id)}`;
          return `<li><a href="${escapeHtml(href)}">${escapeHtml(id)}</a></li>`;
        });
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        res.end(`<!doctype html><title>Test sign-in</title><ul>${links.join('')}</ul>`);
        return;
      }
      if (!users.has(accountId)) {
        await provider.interactionFinished(req, res, {
          error: 'access_denied',
          error_description: 'unknown test user',
        });
        return;
      }
      await provider.interactionFinished(req, res, { login: { accountId } });
      return;
    }

    if (prompt.name === 'consent') {
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
      const missing = prompt.details;
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      const grantId = await grant.save();
      await provider.interactionFinished(req, res, { consent: { grantId } });
      return;
    }

    res.writeHead(400, { 'content-type': 'text/plain' });
    res.end(`unsupported prompt ${prompt.name}`);
  }

  const handleProvider = provider.callback();
  server.on('request', (req, res) => {
    const url = new URL(req.url, issuer);
    if (req.method === 'GET' && /^\/interaction\/[^/]+$/.test(url.pathname)) {
      interaction(req, res, url).catch((err) => {
        console.error('interaction failed:', err);
        if (!res.headersSent) res.writeHead(400, { 'content-type': 'text/plain' });
        res.end(String(err?.message ?? err));
      });
      return;
    }
    handleProvider(req, res);
  });

  provider.on('server_error', (ctx, err) => console.error('server_error:', err));

  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref(); // don't hang on stragglers
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);

  process.stdout.write(`READY ${issuer}\n`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
