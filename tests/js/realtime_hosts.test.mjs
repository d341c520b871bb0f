// Two SelfDB hosts on one database, joined by Redis (started by
// tests/tests/all/supabase_js.rs), driven by supabase-js: a broadcast sent
// through one reaches a client of the other, presence is shared, and a
// change is delivered once to subscribers on both hosts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from '@supabase/supabase-js';
import pg from 'pg';
import ws from 'ws';
import { until, subscribed } from './realtime_helpers.mjs';

const urlA = process.env.SELFDB_URL;
const urlB = process.env.SELFDB_URL_B;
const anonKey = process.env.SELFDB_ANON_KEY;
const serviceKey = process.env.SELFDB_SERVICE_KEY;
const options = {
  auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  realtime: { transport: ws },
};
const clients = [];
function client(url, key = anonKey) {
  const c = createClient(url, key, options);
  clients.push(c);
  return c;
}
let db;



before(async () => {
  db = new pg.Client({ connectionString: process.env.SELFDB_DATABASE_URL });
  await db.connect();
  await db.query(`create table shared (id serial primary key, body text);
                  alter publication supabase_realtime add table shared;`);
});

after(async () => {
  for (const c of clients) await c.removeAllChannels();
  await db.end();
});

test('a broadcast through one host reaches a client of the other', async () => {
  const got = [];
  await subscribed(client(urlB).channel('bridge').on('broadcast', { event: 'm' }, (m) => got.push(m.payload)));
  const sender = await subscribed(client(urlA).channel('bridge'));
  // Pub/sub needs both hosts subscribed to Redis: retry until it flows.
  await until(async () => {
    await sender.send({ type: 'broadcast', event: 'm', payload: { from: 'a' } });
    return got.length > 0;
  }, 'the cross-host broadcast');
  assert.deepEqual(got[0], { from: 'a' });
});

test('presence is shared across hosts', async () => {
  const onA = client(urlA).channel('square', { config: { presence: { key: 'ann' } } });
  const onB = client(urlB).channel('square', { config: { presence: { key: 'ben' } } });
  onA.on('presence', { event: 'sync' }, () => {});
  onB.on('presence', { event: 'sync' }, () => {});
  await subscribed(onA);
  await subscribed(onB);
  await onA.track({ at: 'a' });
  await onB.track({ at: 'b' });
  await until(() => onA.presenceState().ben && onB.presenceState().ann, 'both see both');
});

test('a change reaches subscribers on both hosts exactly once', async () => {
  const seen = { a: [], b: [] };
  for (const [name, url] of [['a', urlA], ['b', urlB]]) {
    await subscribed(
      client(url, serviceKey)
        .channel(`shared-${name}`)
        .on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'shared' }, (e) => seen[name].push(e.new.body)),
    );
  }
  await db.query(`insert into shared (body) values ('one'), ('two')`);
  await until(() => seen.a.length >= 2 && seen.b.length >= 2, 'both hosts deliver');
  await db.query(`insert into shared (body) values ('marker')`);
  await until(() => seen.a.includes('marker') && seen.b.includes('marker'), 'the marker');
  assert.deepEqual(seen.a, ['one', 'two', 'marker']);
  assert.deepEqual(seen.b, ['one', 'two', 'marker']);
});
