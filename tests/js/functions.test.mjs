// Functions (/functions/v1) through the real supabase-js client
// (functions-js) against a SelfDB host started by tests/tests/all/supabase_js.rs:
// a TypeScript function deployed as source, invoked with bodies, methods,
// headers, paths below its name and query strings.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from '@supabase/supabase-js';
import ws from 'ws';

const url = process.env.SELFDB_URL;
const anonKey = process.env.SELFDB_ANON_KEY;
const serviceKey = process.env.SELFDB_SERVICE_KEY;
const options = {
  auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  realtime: { transport: ws },
};
const anon = createClient(url, anonKey, options);

const ECHO = `import { serve, caller } from "selfdb";

serve(async (req: Request) => {
  const url = new URL(req.url);
  const text = req.method === "GET" ? "" : await req.text();
  return new Response(
    JSON.stringify({
      method: req.method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      contentType: req.headers.get("content-type"),
      custom: req.headers.get("x-custom"),
      body: text,
      role: caller().role,
    }),
    { status: url.searchParams.get("status") ? Number(url.searchParams.get("status")) : 200,
      headers: { "content-type": "application/json", "x-answer": "42" } },
  );
});
`;

before(async () => {
  const res = await fetch(`${url}/api/v1/functions/echo?entry=index.ts`, {
    method: 'PUT',
    headers: { apikey: serviceKey, authorization: `Bearer ${serviceKey}`, 'content-type': 'application/typescript' },
    body: ECHO,
    signal: AbortSignal.timeout(600_000),
  });
  assert.equal(res.status, 200, await res.text());
});

test('invoke with a JSON body', async () => {
  const { data, error } = await anon.functions.invoke('echo', { body: { name: 'Ada' } });
  assert.equal(error, null);
  assert.equal(data.method, 'POST');
  assert.equal(data.contentType, 'application/json');
  assert.deepEqual(JSON.parse(data.body), { name: 'Ada' });
  assert.equal(data.role, 'anon');
});

test('methods, headers, paths below the name and query strings pass through', async () => {
  const { data, error } = await anon.functions.invoke('echo/items/7?limit=2&q=x', {
    method: 'GET',
    headers: { 'x-custom': 'yes' },
  });
  assert.equal(error, null);
  assert.equal(data.method, 'GET');
  assert.equal(data.path, '/functions/v1/echo/items/7');
  assert.deepEqual(data.query, { limit: '2', q: 'x' });
  assert.equal(data.custom, 'yes');

  const text = await anon.functions.invoke('echo', { body: 'plain words' });
  assert.equal(text.error, null);
  assert.equal(text.data.body, 'plain words');
  assert.equal(text.data.contentType, 'text/plain');
});

test("a function's error status reaches the client as a FunctionsHttpError", async () => {
  const { data, error } = await anon.functions.invoke('echo?status=418', { body: {} });
  assert.equal(data, null);
  assert.equal(error?.name, 'FunctionsHttpError');
  assert.equal(error.context.status, 418);
  assert.equal(error.context.headers.get('x-answer'), '42');
});

test('an unknown function is a 404', async () => {
  const { error } = await anon.functions.invoke('nope', { body: {} });
  assert.equal(error?.name, 'FunctionsHttpError');
  assert.equal(error.context.status, 404);
});
