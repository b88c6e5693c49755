// Drives openid-client (panva) against a live tessera server. Input: a JSON object on stdin
// (see tests/interop/test_openid_client.py); output: one JSON object on stdout.
//   1. discovery of the issuer's metadata
//   2. client_credentials with tls_client_auth (client certificate over undici)
//   3. PAR + authorization code + PKCE with private_key_jwt; the merchant's login form is
//      posted with fetch, then openid-client finishes the code exchange from the redirect.
import * as client from 'openid-client';
import { Agent, fetch as undiciFetch } from 'undici';
import { readFileSync } from 'node:fs';

const input = JSON.parse(readFileSync(0, 'utf8'));
const issuer = new URL(input.issuer);
const ca = readFileSync(input.ca);
const out = {};

function mtlsFetch(certPath, keyPath) {
  const dispatcher = new Agent({
    connect: { ca, cert: readFileSync(certPath), key: readFileSync(keyPath), autoSelectFamily: true },
  });
  return (url, options) => undiciFetch(url, { ...options, dispatcher });
}

// 1 + 2: discovery and client_credentials with tls_client_auth
{
  const t = input.tls;
  const config = await client.discovery(issuer, t.client_id, { use_mtls_endpoint_aliases: true },
    client.TlsClientAuth(), { [client.customFetch]: mtlsFetch(t.cert, t.key) });
  const md = config.serverMetadata();
  out.discovery = {
    issuer: md.issuer,
    token_endpoint: md.token_endpoint,
    pushed_authorization_request_endpoint: md.pushed_authorization_request_endpoint,
    supportsPKCE: config.serverMetadata().supportsPKCE(),
  };
  const tokens = await client.clientCredentialsGrant(config, { scope: t.scope });
  out.client_credentials = { access_token: tokens.access_token, token_type: tokens.token_type,
                             expires_in: tokens.expiresIn(), scope: tokens.scope };
}

// 3: PAR + authorization code + PKCE with private_key_jwt
{
  const p = input.pkjwt;
  const key = await crypto.subtle.importKey('jwk', p.jwk, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
  const config = await client.discovery(issuer, p.client_id, { token_endpoint_auth_signing_alg: 'ES256' },
    client.PrivateKeyJwt({ key, kid: p.jwk.kid }));
  const verifier = client.randomPKCECodeVerifier();
  const challenge = await client.calculatePKCECodeChallenge(verifier);
  const state = client.randomState();
  const nonce = client.randomNonce();
  const authUrl = await client.buildAuthorizationUrlWithPAR(config, {
    redirect_uri: p.redirect_uri, scope: p.scope, code_challenge: challenge, code_challenge_method: 'S256',
    state, nonce,
  });
  out.authorization_url = authUrl.href;

  // the merchant user's login, as a browser would post it
  const page = await fetch(authUrl, { redirect: 'manual' });
  if (page.status !== 200) throw new Error(`login page: ${page.status}`);
  const html = await page.text();
  const hidden = Object.fromEntries([...html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)]
    .map((m) => [m[1], m[2].replaceAll('&amp;', '&').replaceAll('&#34;', '"').replaceAll('&#39;', "'")]));
  const action = new URL(html.match(/<form method="post" action="([^"]+)"/)[1], issuer);
  const done = await fetch(action, {
    method: 'POST', redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ ...hidden, username: p.username, password: p.password }),
  });
  if (done.status !== 303) throw new Error(`login: ${done.status} ${await done.text()}`);
  const callback = new URL(done.headers.get('location'));

  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true,
  });
  const claims = tokens.claims();
  out.authorization_code = {
    access_token: tokens.access_token, refresh_token: tokens.refresh_token, scope: tokens.scope,
    id_token_sub: claims?.sub, id_token_nonce_matched: claims?.nonce === nonce,
  };
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  out.refresh = { access_token: refreshed.access_token, rotated: refreshed.refresh_token !== tokens.refresh_token };
}

process.stdout.write(JSON.stringify(out) + '\n');
