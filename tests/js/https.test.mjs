// supabase-js over HTTPS: a host started by tests/tests/all/edge.rs with
// --tls-cert/--tls-key (a certificate of a test CA that node trusts through
// NODE_EXTRA_CA_CERTS), driven through auth, the data API, storage,
// functions and realtime (wss).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from '@supabase/supabase-js';
import pg from 'pg';
import ws from 'ws';
import { until, subscribed } from './realtime_helpers.mjs';

const url = process.env.SELFDB_URL;
const anonKey = process.env.SELFDB_ANON_KEY;
const serviceKey = process.env.SELFDB_SERVICE_KEY;
const databaseUrl = process.env.SELFDB_DATABASE_URL;
const options = {
  auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  realtime: { transport: ws },
};
const anon = createClient(url, anonKey, options);
const service = createClient(url, serviceKey, options);

before(async () => {
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    await db.query(`
      create table notes (id serial primary key, owner uuid not null default auth.uid(), body text not null);
      alter table notes enable row level security;
      create policy own on notes using (owner = auth.uid()) with check (owner = auth.uid());
      grant select, insert on notes to authenticated;
      grant usage on sequence notes_id_seq to authenticated;
    `);
  } finally {
    await db.end();
  }
  await until(async () => !(await service.from('notes').select('id').limit(1)).error, 'the notes table');
});

test('the host speaks https', () => {
  assert.ok(url.startsWith('https://'), url);
});

test('auth and the data API over https, under RLS', async () => {
  const email = `tls-${Date.now()}@example.com`;
  const client = createClient(url, anonKey, options);
  const up = await client.auth.signUp({ email, password: 'secret-123' });
  assert.equal(up.error, null);
  const signedIn = await client.auth.signInWithPassword({ email, password: 'secret-123' });
  assert.equal(signedIn.error, null);
  const refreshed = await client.auth.refreshSession();
  assert.equal(refreshed.error, null);
  assert.ok(refreshed.data.session.access_token);

  const inserted = await client.from('notes').insert({ body: 'over tls' }).select();
  assert.equal(inserted.error, null);
  const { data, error, count } = await client.from('notes').select('body', { count: 'exact' });
  assert.equal(error, null);
  assert.deepEqual(data, [{ body: 'over tls' }]);
  assert.equal(count, 1);
  // Another user sees none of it.
  const { data: none } = await anon.from('notes').select('body');
  assert.deepEqual(none, []);
});

test('storage over https', async () => {
  const created = await service.storage.createBucket('tls-files', { public: false });
  assert.equal(created.error, null);
  const bytes = new Uint8Array(300_000).map((_, i) => i % 251);
  const up = await service.storage.from('tls-files').upload('a/b.bin', bytes, {
    contentType: 'application/octet-stream',
  });
  assert.equal(up.error, null);
  const down = await service.storage.from('tls-files').download('a/b.bin');
  assert.equal(down.error, null);
  assert.deepEqual(new Uint8Array(await down.data.arrayBuffer()), bytes);
  const signed = await service.storage.from('tls-files').createSignedUrl('a/b.bin', 60);
  assert.equal(signed.error, null);
  assert.ok(signed.data.signedUrl.startsWith('https://'), signed.data.signedUrl);
  const fetched = await fetch(signed.data.signedUrl);
  assert.equal(fetched.status, 200);
  assert.equal((await fetched.arrayBuffer()).byteLength, bytes.length);
});

test('functions over https', async () => {
  const { data, error } = await anon.functions.invoke('hello', { body: { name: 'TLS' } });
  assert.equal(error, null);
  assert.deepEqual(data, { greeting: 'Hello, TLS!', role: 'anon' });
});

test('realtime over wss', async () => {
  const client = createClient(url, anonKey, options);
  const seen = [];
  const channel = client
    .channel('tls-room', { config: { broadcast: { self: true, ack: true } } })
    .on('broadcast', { event: 'msg' }, (m) => seen.push(m.payload));
  await subscribed(channel);
  assert.equal(await channel.send({ type: 'broadcast', event: 'msg', payload: { over: 'wss' } }), 'ok');
  assert.deepEqual(await until(() => seen.shift(), 'the broadcast back'), { over: 'wss' });
  await client.removeAllChannels();
});
