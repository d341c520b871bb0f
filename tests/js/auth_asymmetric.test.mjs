// Users' access tokens signed with an ES256 key (the host runs with
// --jwt-signing-key): auth-js verifies them itself against the JWKS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from '@supabase/supabase-js';
import ws from 'ws';

const url = process.env.SELFDB_URL;
const anonKey = process.env.SELFDB_ANON_KEY;
const options = {
  auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  realtime: { transport: ws },
};
const decode = (part) => JSON.parse(Buffer.from(part, 'base64url'));

test('ES256 access tokens verify against the published JWKS', async () => {
  const supabase = createClient(url, anonKey, options);
  const { data, error } = await supabase.auth.signUp({ email: `es256-${Date.now()}@example.com`, password: 'es256-pass' });
  assert.equal(error, null);
  const [header] = data.session.access_token.split('.');
  const { alg, kid } = decode(header);
  assert.equal(alg, 'ES256');
  assert.ok(kid);

  const jwks = await (await fetch(`${url}/auth/v1/.well-known/jwks.json`)).json();
  assert.equal(jwks.keys.length, 1);
  assert.equal(jwks.keys[0].kid, kid);
  assert.equal(jwks.keys[0].kty, 'EC');

  // auth-js fetches the JWKS and checks the signature with WebCrypto.
  const claims = await supabase.auth.getClaims();
  assert.equal(claims.error, null);
  assert.equal(claims.data.claims.sub, data.user.id);

  const user = await supabase.auth.getUser();
  assert.equal(user.error, null, 'the host accepts ES256 user tokens');
  const api = await fetch(`${url}/rest/v1/`, {
    headers: { apikey: anonKey, authorization: `Bearer ${data.session.access_token}` },
  });
  assert.equal(api.status, 200);

  // The same claims under the same kid, signed by another key, are refused.
  const other = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign']);
  const [, payload] = data.session.access_token.split('.');
  const signed = `${header}.${payload}`;
  const signature = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, other.privateKey, Buffer.from(signed));
  const forged = `${signed}.${Buffer.from(signature).toString('base64url')}`;
  const refused = await fetch(`${url}/auth/v1/user`, { headers: { apikey: anonKey, authorization: `Bearer ${forged}` } });
  assert.equal(refused.status, 403);
  assert.equal((await refused.json()).code, 'bad_jwt');
});
