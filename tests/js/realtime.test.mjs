// Realtime (/realtime/v1) through the real supabase-js client (realtime-js
// over node's `ws`) against a SelfDB host started by
// tests/tests/all/supabase_js.rs: database changes with and without
// filters and under RLS, broadcast with ack and self, the REST broadcast,
// broadcasts from SQL, presence, private channels, and tokens.
//
// Every wait has a deadline: `until` polls a condition, `next` waits for
// the next matching event.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from '@supabase/supabase-js';
import crypto from 'node:crypto';
import net from 'node:net';
import pg from 'pg';
import ws from 'ws';
import { until, subscribed } from './realtime_helpers.mjs';

const url = process.env.SELFDB_URL;
const anonKey = process.env.SELFDB_ANON_KEY;
const serviceKey = process.env.SELFDB_SERVICE_KEY;
const databaseUrl = process.env.SELFDB_DATABASE_URL;
const jwtSecret = process.env.SELFDB_JWT_SECRET;
const options = {
  auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  realtime: { transport: ws },
};
const clients = [];
function client(key = anonKey) {
  const c = createClient(url, key, options);
  clients.push(c);
  return c;
}

let db;
async function sql(text, params) {
  return db.query(text, params);
}


/// Collects a channel's events of one kind; `next` awaits the next one.
function collector() {
  const seen = [];
  return {
    seen,
    push: (e) => seen.push(e),
    next: (what, ms) => until(() => seen.shift(), what, ms),
  };
}


function sign(claims) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  const sig = crypto.createHmac('sha256', jwtSecret).update(body).digest('base64url');
  return `${body}.${sig}`;
}

function userToken(sub, seconds) {
  const now = Math.floor(Date.now() / 1000);
  return sign({ sub, role: 'authenticated', aud: 'authenticated', iat: now, exp: now + seconds });
}

before(async () => {
  db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  await sql(`
    create table items (
      id serial primary key,
      name text not null,
      qty int,
      price numeric,
      done boolean default false,
      tags text[] default '{}',
      meta jsonb,
      at timestamptz default '2024-05-01 12:00:00+00'
    );
    create table secrets (
      id serial primary key,
      owner_id uuid not null,
      body text not null
    );
    alter table secrets enable row level security;
    create policy own on secrets for select to authenticated using (auth.uid() = owner_id);
    grant select on secrets to authenticated;
    alter publication supabase_realtime add table items, secrets;
    create policy room_read on realtime.messages for select to authenticated
      using (realtime.topic() = 'vip' and (auth.jwt() ->> 'sub') = '00000000-0000-0000-0000-00000000000a');
    create policy room_write on realtime.messages for insert to authenticated
      with check (realtime.topic() = 'vip' and (auth.jwt() ->> 'sub') = '00000000-0000-0000-0000-00000000000a');
  `);
});

after(async () => {
  for (const c of clients) await c.removeAllChannels();
  await db.end();
});

test('inserts, updates and deletes arrive typed, after SUBSCRIBED, in commit order', async () => {
  const service = client(serviceKey);
  const events = collector();
  const system = collector();
  const channel = service
    .channel('items-all')
    .on('postgres_changes', { event: '*', schema: 'public', table: 'items' }, events.push)
    .on('system', {}, system.push);
  await subscribed(channel);
  // No wait after SUBSCRIBED: a change committed now must arrive.
  await sql(`insert into items (name, qty, price, tags, meta) values ('apple', 3, 1.50, '{red,fruit}', '{"k": [1]}')`);
  const insert = await events.next('the insert');
  assert.equal(insert.eventType, 'INSERT');
  assert.equal(insert.schema, 'public');
  assert.equal(insert.table, 'items');
  assert.deepEqual(insert.new, {
    id: insert.new.id, name: 'apple', qty: 3, price: 1.5, done: false,
    tags: ['red', 'fruit'], meta: { k: [1] }, at: '2024-05-01T12:00:00+00:00',
  });
  assert.equal(typeof insert.new.id, 'number');
  assert.deepEqual(insert.old, {});
  assert.ok(!Number.isNaN(Date.parse(insert.commit_timestamp)));
  assert.equal(insert.errors, null);
  const status = await system.next('the Subscribed to PostgreSQL message');
  assert.equal(status.status, 'ok');

  await sql(`update items set qty = 4 where id = $1`, [insert.new.id]);
  await sql(`delete from items where id = $1`, [insert.new.id]);
  const update = await events.next('the update');
  assert.equal(update.eventType, 'UPDATE');
  assert.equal(update.new.qty, 4);
  assert.deepEqual(update.old, { id: insert.new.id });
  const del = await events.next('the delete');
  assert.equal(del.eventType, 'DELETE');
  assert.deepEqual(del.old, { id: insert.new.id });

  // Many changes in one burst: all of them, in order.
  await sql(`insert into items (name, qty) select 'n' || g, g from generate_series(1, 50) g`);
  for (let i = 1; i <= 50; i++) {
    const e = await events.next(`burst insert ${i}`);
    assert.equal(e.new.qty, i);
  }
});

test('filters and event kinds choose what a channel receives', async () => {
  const service = client(serviceKey);
  const big = collector();
  const named = collector();
  const deletes = collector();
  const channel = service
    .channel('items-filtered')
    .on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'items', filter: 'qty=gt.100' }, big.push)
    .on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'items', filter: 'name=in.(kiwi,lime)' }, named.push)
    .on('postgres_changes', { event: 'DELETE', schema: 'public', table: 'items' }, deletes.push);
  await subscribed(channel);
  await sql(`insert into items (name, qty) values ('pear', 5), ('melon', 500), ('kiwi', 1), ('lime', 1000)`);
  await sql(`delete from items where name = 'pear'`);
  assert.equal((await big.next('qty > 100')).new.name, 'melon');
  assert.equal((await big.next('qty > 100, again')).new.name, 'lime');
  assert.equal((await named.next('kiwi')).new.name, 'kiwi');
  assert.equal((await named.next('lime')).new.name, 'lime');
  assert.equal((await deletes.next('the delete')).eventType, 'DELETE');
  // Nothing else arrives: a marker insert both filters see proves the
  // earlier rows were not just late.
  await sql(`insert into items (name, qty) values ('lime', 101)`);
  assert.equal((await big.next('the marker')).new.qty, 101);
  assert.equal((await named.next('the marker')).new.qty, 101);
  assert.deepEqual(big.seen, []);
  assert.deepEqual(named.seen, []);

  const bad = collector();
  const badChannel = service
    .channel('items-bad-filter')
    .on('postgres_changes', { event: '*', schema: 'public', table: 'items', filter: 'qty=like.5' }, () => {})
    .on('system', {}, bad.push);
  await subscribed(badChannel);
  const error = await bad.next('the filter error');
  assert.equal(error.status, 'error');
  assert.match(error.message, /filter/);
});

test('row-level security decides which subscriber receives a row', async () => {
  const alice = '00000000-0000-0000-0000-00000000000a';
  const bob = '00000000-0000-0000-0000-00000000000b';
  const seen = {};
  for (const [name, sub] of [['alice', alice], ['bob', bob]]) {
    const c = client();
    c.realtime.setAuth(userToken(sub, 3600));
    seen[name] = collector();
    await subscribed(
      c.channel(`secrets-${name}`).on('postgres_changes', { event: '*', schema: 'public', table: 'secrets' }, seen[name].push),
    );
  }
  const anonSeen = collector();
  await subscribed(client().channel('secrets-anon').on('postgres_changes', { event: '*', schema: 'public', table: 'secrets' }, anonSeen.push));

  await sql(`insert into secrets (owner_id, body) values ($1, 'for alice'), ($2, 'for bob'), ($1, 'alice again')`, [alice, bob]);
  assert.equal((await seen.alice.next('alice 1')).new.body, 'for alice');
  assert.equal((await seen.alice.next('alice 2')).new.body, 'alice again');
  assert.equal((await seen.bob.next('bob 1')).new.body, 'for bob');
  // A row for bob only, then one for both to prove nothing else came.
  await sql(`insert into secrets (owner_id, body) values ($1, 'bob only')`, [bob]);
  assert.equal((await seen.bob.next('bob 2')).new.body, 'bob only');
  await sql(`insert into secrets (owner_id, body) values ($1, 'marker')`, [alice]);
  assert.equal((await seen.alice.next('marker')).new.body, 'marker');
  assert.deepEqual(seen.alice.seen, []);
  assert.deepEqual(seen.bob.seen, []);
  // No policy lets anon see a row of secrets.
  assert.deepEqual(anonSeen.seen, []);

  // A delete on an RLS table shows only the key.
  await sql(`delete from secrets where body = 'bob only'`);
  const del = await seen.bob.next('the delete');
  assert.deepEqual(Object.keys(del.old), ['id']);
});

test('broadcast reaches other clients, with self and ack', async () => {
  const a = client();
  const b = client();
  const fromA = collector();
  const fromB = collector();
  const chanA = a.channel('room1', { config: { broadcast: { self: true, ack: true } } }).on('broadcast', { event: 'msg' }, fromA.push);
  const chanB = b.channel('room1').on('broadcast', { event: 'msg' }, fromB.push);
  await subscribed(chanA);
  await subscribed(chanB);
  assert.equal(await chanA.send({ type: 'broadcast', event: 'msg', payload: { text: 'hi' } }), 'ok');
  assert.deepEqual((await fromB.next('B gets A')).payload, { text: 'hi' });
  assert.deepEqual((await fromA.next('A gets itself')).payload, { text: 'hi' });
  // B did not ask for its own messages.
  assert.equal(await chanB.send({ type: 'broadcast', event: 'msg', payload: { n: 2 } }), 'ok');
  assert.deepEqual((await fromA.next('A gets B')).payload, { n: 2 });
  assert.deepEqual(fromB.seen, []);

  // A payload over the cap is refused under ack.
  const big = 'x'.repeat(300 * 1024);
  assert.equal(await chanA.send({ type: 'broadcast', event: 'msg', payload: { big } }), 'error');

  // The REST broadcast (what supabase-js uses for a channel it has not joined).
  const res = await fetch(`${url}/realtime/v1/api/broadcast`, {
    method: 'POST',
    headers: { apikey: anonKey, 'content-type': 'application/json' },
    body: JSON.stringify({ messages: [{ topic: 'room1', event: 'msg', payload: { via: 'rest' } }] }),
  });
  assert.equal(res.status, 202);
  assert.deepEqual((await fromB.next('the REST broadcast')).payload, { via: 'rest' });
  const unjoined = client().channel('room1');
  assert.equal(await unjoined.send({ type: 'broadcast', event: 'msg', payload: { via: 'fallback' } }), 'ok');
  assert.deepEqual((await fromB.next('the fallback broadcast')).payload, { via: 'fallback' });
  assert.deepEqual(await client().channel('room1').httpSend('msg', { via: 'httpSend' }), { success: true });
  assert.deepEqual((await fromB.next('the httpSend broadcast')).payload, { via: 'httpSend' });
  const refused = await fetch(`${url}/realtime/v1/api/broadcast`, {
    method: 'POST',
    headers: { apikey: 'not-a-token', 'content-type': 'application/json' },
    body: '{}',
  });
  assert.equal(refused.status, 401);
});

test('realtime.send broadcasts from SQL to public and private channels', async () => {
  const member = '00000000-0000-0000-0000-00000000000a';
  const pub = collector();
  await subscribed(client().channel('news').on('broadcast', { event: 'headline' }, pub.push));
  await sql(`select realtime.send('{"title": "extra"}', 'headline', 'news', false)`);
  const got = await pub.next('the SQL broadcast');
  assert.equal(got.payload.title, 'extra');
  assert.ok(got.payload.id);

  const vip = client();
  vip.realtime.setAuth(userToken(member, 3600));
  const secret = collector();
  await subscribed(vip.channel('vip', { config: { private: true } }).on('broadcast', { event: 'note' }, secret.push));
  await sql(`select realtime.send('{"t": 1}', 'note', 'vip')`);
  assert.equal((await secret.next('the private SQL broadcast')).payload.t, 1);

  // A member may send on it (the insert policy); an outsider's REST
  // broadcast to it is accepted and dropped, as on Supabase.
  const own = collector();
  const sender = client();
  sender.realtime.setAuth(userToken(member, 3600));
  const chan = sender
    .channel('vip', { config: { private: true, broadcast: { self: true, ack: true } } })
    .on('broadcast', { event: 'chat' }, own.push);
  await subscribed(chan);
  assert.equal(await chan.send({ type: 'broadcast', event: 'chat', payload: { n: 1 } }), 'ok');
  assert.equal((await own.next('the member own private broadcast')).payload.n, 1);
  for (const [sub, n] of [['00000000-0000-0000-0000-00000000000b', 2], [member, 3]]) {
    const res = await fetch(`${url}/realtime/v1/api/broadcast`, {
      method: 'POST',
      headers: { apikey: anonKey, authorization: `Bearer ${userToken(sub, 3600)}`, 'content-type': 'application/json' },
      body: JSON.stringify({ messages: [{ topic: 'vip', event: 'chat', payload: { n }, private: true }] }),
    });
    assert.equal(res.status, 202);
  }
  assert.equal((await own.next('the member REST broadcast')).payload.n, 3);
  assert.deepEqual(own.seen, []);

  // Someone the policy does not name cannot join.
  const outsider = client();
  outsider.realtime.setAuth(userToken('00000000-0000-0000-0000-00000000000b', 3600));
  await assert.rejects(
    subscribed(outsider.channel('vip', { config: { private: true } })),
    /permissions to read/,
  );
});

test('realtime.broadcast_changes from a trigger reaches a private channel', async () => {
  await sql(`
    create table feed (id serial primary key, body text);
    create function feed_changes() returns trigger language plpgsql as $$
    begin
      perform realtime.broadcast_changes('feed', TG_OP, TG_OP, TG_TABLE_NAME, TG_TABLE_SCHEMA, NEW, OLD);
      return null;
    end $$;
    create trigger feed_changes after insert or update on feed for each row execute function feed_changes();
  `);
  const got = collector();
  await subscribed(client(serviceKey).channel('feed', { config: { private: true } }).on('broadcast', { event: 'INSERT' }, got.push));
  await sql(`insert into feed (body) values ('hello')`);
  const message = await got.next('the trigger broadcast');
  assert.equal(message.payload.operation, 'INSERT');
  assert.equal(message.payload.table, 'feed');
  assert.equal(message.payload.record.body, 'hello');
  assert.equal(message.payload.old_record, null);
});

test('presence: joins, updates and leaves reach every member', async () => {
  const a = client();
  const b = client();
  const chanA = a.channel('lobby', { config: { presence: { key: 'alice' } } });
  const chanB = b.channel('lobby', { config: { presence: { key: 'bob' } } });
  const leaves = collector();
  chanA.on('presence', { event: 'sync' }, () => {}).on('presence', { event: 'leave' }, leaves.push);
  chanB.on('presence', { event: 'sync' }, () => {});
  await subscribed(chanA);
  await subscribed(chanB);
  assert.equal(await chanA.track({ status: 'online' }), 'ok');
  assert.equal(await chanB.track({ status: 'away' }), 'ok');
  await until(() => Object.keys(chanA.presenceState()).length === 2, 'A sees both');
  await until(() => chanB.presenceState().alice?.[0]?.status === 'online', 'B sees alice');
  await chanB.track({ status: 'online' });
  await until(
    () => chanA.presenceState().bob?.length === 1 && chanA.presenceState().bob[0].status === 'online',
    'A sees bob update',
  );
  // An update is a leave and a join; what follows is bob leaving for good.
  leaves.seen.length = 0;
  await b.removeChannel(chanB);
  const leave = await leaves.next('bob leaves');
  assert.equal(leave.key, 'bob');
  await until(() => !chanA.presenceState().bob, 'bob gone from A');
});

test('a refreshed token keeps a channel; an expired one closes it', async () => {
  const user = '00000000-0000-0000-0000-00000000000c';
  const c = client();
  c.realtime.setAuth(userToken(user, 6));
  const system = collector();
  const statuses = collector();
  const kept = c.channel('kept', { config: { broadcast: { ack: true } } });
  await subscribed(kept);
  // Refreshed before it expires: the channel stays.
  await c.realtime.setAuth(userToken(user, 3600));
  const doomed = client();
  doomed.realtime.setAuth(userToken(user, 6));
  const channel = doomed.channel('doomed').on('system', {}, system.push);
  channel.subscribe((s) => statuses.push(s));
  assert.equal(await statuses.next('SUBSCRIBED'), 'SUBSCRIBED');
  const expired = await system.next('the expiry message', 15_000);
  assert.equal(expired.status, 'error');
  assert.match(expired.message, /Token has expired/);
  assert.equal(await statuses.next('CLOSED', 5_000), 'CLOSED');
  // Past the first token's expiry, the refreshed channel still answers.
  assert.equal(await kept.send({ type: 'broadcast', event: 'ping', payload: {} }), 'ok');

  // A forged token is refused at join.
  const forged = client();
  forged.realtime.setAuth(userToken(user, 3600).slice(0, -4) + 'AAAA');
  await assert.rejects(subscribed(forged.channel('forged')), /JWT|signature|token/i);
});

test('a client whose connection drops reconnects, rejoins and gets later changes', async () => {
  // A TCP proxy in front of the host, whose connections the test cuts.
  const target = new URL(url);
  const open = new Set();
  const proxy = net.createServer((inbound) => {
    const outbound = net.connect(Number(target.port), target.hostname);
    inbound.pipe(outbound).pipe(inbound);
    const pair = { inbound, outbound };
    open.add(pair);
    const close = () => {
      inbound.destroy();
      outbound.destroy();
      open.delete(pair);
    };
    inbound.on('error', close).on('close', close);
    outbound.on('error', close).on('close', close);
  });
  await new Promise((r) => proxy.listen(0, '127.0.0.1', r));
  try {
    const c = createClient(`http://127.0.0.1:${proxy.address().port}`, serviceKey, options);
    clients.push(c);
    const events = collector();
    const statuses = collector();
    const channel = c
      .channel('items-reconnect')
      .on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'items' }, events.push);
    channel.subscribe((s) => statuses.push(s));
    assert.equal(await statuses.next('SUBSCRIBED'), 'SUBSCRIBED');
    await sql(`insert into items (name) values ('before the drop')`);
    assert.equal((await events.next('the first insert')).new.name, 'before the drop');

    for (const { inbound, outbound } of open) {
      inbound.destroy();
      outbound.destroy();
    }
    // realtime-js reconnects (1 s backoff) and rejoins: SUBSCRIBED again.
    assert.equal(await until(() => statuses.seen.find((s) => s === 'SUBSCRIBED'), 'the rejoin', 20_000), 'SUBSCRIBED');
    await sql(`insert into items (name) values ('after the drop')`);
    assert.equal((await events.next('the insert after reconnecting')).new.name, 'after the drop');
  } finally {
    proxy.close();
  }
});
