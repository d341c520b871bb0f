// Supabase Auth flows through the real supabase-js client against a SelfDB
// host started by tests/tests/supabase_js.rs (which passes its URL and keys).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from '@supabase/supabase-js';
import pg from 'pg';
import ws from 'ws';

const url = process.env.SELFDB_URL;
const anonKey = process.env.SELFDB_ANON_KEY;
const serviceKey = process.env.SELFDB_SERVICE_KEY;
const databaseUrl = process.env.SELFDB_DATABASE_URL;
assert.ok(url && anonKey && serviceKey && databaseUrl, 'the harness passes URL, keys and DATABASE_URL');

// Node 20 has no global WebSocket; supabase-js's realtime client needs one.
const options = {
  auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  realtime: { transport: ws },
};
const client = () => createClient(url, anonKey, options);
const admin = createClient(url, serviceKey, options);
let counter = 0;
const freshEmail = (tag) => `${tag}-${Date.now()}-${counter++}@example.com`;

async function lastMail(recipient) {
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    const { rows } = await db.query(
      'select subject, body, kind from selfdb.mail_outbox where recipient = $1 order by id desc limit 1',
      [recipient],
    );
    return rows[0];
  } finally {
    await db.end();
  }
}

test('sign up, sign in, read and update the user, refresh the session', async () => {
  const supabase = client();
  const email = freshEmail('ada');
  const signUp = await supabase.auth.signUp({ email, password: 'first-password', options: { data: { name: 'Ada' } } });
  assert.equal(signUp.error, null);
  assert.ok(signUp.data.session?.access_token, 'autoconfirm signs the user in');
  assert.equal(signUp.data.user.email, email);
  assert.equal(signUp.data.user.user_metadata.name, 'Ada');

  const signIn = await supabase.auth.signInWithPassword({ email, password: 'first-password' });
  assert.equal(signIn.error, null);
  const { session } = signIn.data;
  assert.equal(session.token_type, 'bearer');
  assert.ok(session.expires_at > Date.now() / 1000);
  const claims = JSON.parse(Buffer.from(session.access_token.split('.')[1], 'base64url'));
  assert.equal(claims.sub, signUp.data.user.id);
  assert.equal(claims.role, 'authenticated');
  assert.equal(claims.aud, 'authenticated');
  assert.equal(claims.email, email);
  assert.ok(claims.session_id);

  const got = await supabase.auth.getUser();
  assert.equal(got.error, null);
  assert.equal(got.data.user.id, signUp.data.user.id);

  const updated = await supabase.auth.updateUser({ data: { name: 'Ada L.', city: 'London' } });
  assert.equal(updated.error, null);
  assert.equal(updated.data.user.user_metadata.name, 'Ada L.');
  assert.equal(updated.data.user.user_metadata.city, 'London');

  const refreshed = await supabase.auth.refreshSession();
  assert.equal(refreshed.error, null);
  assert.notEqual(refreshed.data.session.refresh_token, session.refresh_token);
  const newClaims = JSON.parse(Buffer.from(refreshed.data.session.access_token.split('.')[1], 'base64url'));
  assert.equal(newClaims.user_metadata.city, 'London', 'refresh re-reads the user');

  const changed = await supabase.auth.updateUser({ password: 'second-password' });
  assert.equal(changed.error, null);
  const old = await client().auth.signInWithPassword({ email, password: 'first-password' });
  assert.equal(old.error?.code, 'invalid_credentials');
  const fresh = await client().auth.signInWithPassword({ email, password: 'second-password' });
  assert.equal(fresh.error, null);
});

test('errors carry Supabase Auth codes and statuses', async () => {
  const supabase = client();
  const email = freshEmail('dup');
  assert.equal((await supabase.auth.signUp({ email, password: 'long-enough' })).error, null);

  const duplicate = await client().auth.signUp({ email, password: 'long-enough' });
  assert.equal(duplicate.error.status, 422);
  assert.equal(duplicate.error.code, 'user_already_exists');

  const weak = await client().auth.signUp({ email: freshEmail('weak'), password: '123' });
  assert.equal(weak.error.status, 422);
  assert.equal(weak.error.code, 'weak_password');
  assert.deepEqual(weak.error.reasons, ['length']);

  const malformed = await client().auth.signUp({ email: 'not-an-email', password: 'long-enough' });
  assert.equal(malformed.error.status, 400);
  assert.equal(malformed.error.code, 'validation_failed');

  const wrong = await client().auth.signInWithPassword({ email, password: 'not-the-password' });
  assert.equal(wrong.error.status, 400);
  assert.equal(wrong.error.code, 'invalid_credentials');

  const unknown = await client().auth.signInWithPassword({ email: freshEmail('nobody'), password: 'whatever1' });
  assert.equal(unknown.error.code, 'invalid_credentials', 'unknown accounts look like wrong passwords');

  const noKey = await fetch(`${url}/auth/v1/settings`);
  assert.equal(noKey.status, 401);
  assert.match((await noKey.json()).message, /No API key/);
});

test('refresh tokens are single use; reuse revokes the session', async () => {
  const email = freshEmail('rotate');
  const supabase = client();
  const { data } = await supabase.auth.signUp({ email, password: 'rotate-me-1' });
  const first = data.session.refresh_token;

  const once = await client().auth.refreshSession({ refresh_token: first });
  assert.equal(once.error, null);
  const second = once.data.session.refresh_token;

  const reused = await client().auth.refreshSession({ refresh_token: first });
  assert.equal(reused.error.status, 400);
  assert.equal(reused.error.code, 'refresh_token_already_used');

  // The whole session went with it, including the token issued after.
  const afterReuse = await client().auth.refreshSession({ refresh_token: second });
  assert.equal(afterReuse.error.code, 'refresh_token_not_found');

  const garbage = await client().auth.refreshSession({ refresh_token: 'not-a-token' });
  assert.equal(garbage.error.code, 'refresh_token_not_found');
});

test('sign out honours local, others and global scopes', async () => {
  const email = freshEmail('scopes');
  await client().auth.signUp({ email, password: 'scoped-pass' });
  const sessions = [];
  for (let i = 0; i < 3; i++) {
    const c = client();
    const { data, error } = await c.auth.signInWithPassword({ email, password: 'scoped-pass' });
    assert.equal(error, null);
    sessions.push({ c, refresh: data.session.refresh_token });
  }
  const stillValid = async (s) => (await client().auth.refreshSession({ refresh_token: s.refresh })).error === null;

  assert.equal((await sessions[0].c.auth.signOut({ scope: 'others' })).error, null);
  assert.equal(await stillValid(sessions[1]), false);
  assert.equal(await stillValid(sessions[2]), false);

  const { data } = await sessions[0].c.auth.getSession();
  assert.ok(data.session, 'scope=others keeps the caller signed in');

  assert.equal((await sessions[0].c.auth.signOut({ scope: 'local' })).error, null);
  const gone = await client().auth.refreshSession({ refresh_token: data.session.refresh_token });
  assert.equal(gone.error.code, 'refresh_token_not_found');

  const a = client();
  const b = client();
  const sa = (await a.auth.signInWithPassword({ email, password: 'scoped-pass' })).data.session;
  const sb = (await b.auth.signInWithPassword({ email, password: 'scoped-pass' })).data.session;
  assert.equal((await a.auth.signOut()).error, null, 'global is the default');
  assert.equal(await stillValid({ refresh: sa.refresh_token }), false);
  assert.equal(await stillValid({ refresh: sb.refresh_token }), false);
});

test('password reset through the dev outbox', async () => {
  const email = freshEmail('reset');
  await client().auth.signUp({ email, password: 'forgotten-1' });
  const asked = await client().auth.resetPasswordForEmail(email);
  assert.equal(asked.error, null);
  const mail = await lastMail(email);
  assert.equal(mail.kind, 'recovery');
  const code = mail.body.match(/code: (\d{6})/)[1];
  assert.match(mail.body, /\/auth\/v1\/verify\?token=[0-9a-f]{56}&type=recovery/);

  const supabase = client();
  const verified = await supabase.auth.verifyOtp({ email, token: code, type: 'recovery' });
  assert.equal(verified.error, null);
  assert.ok(verified.data.session);
  const reused = await client().auth.verifyOtp({ email, token: code, type: 'recovery' });
  assert.equal(reused.error.code, 'otp_expired', 'a code works once');

  assert.equal((await supabase.auth.updateUser({ password: 'remembered-2' })).error, null);
  assert.equal((await client().auth.signInWithPassword({ email, password: 'remembered-2' })).error, null);

  const unknown = await client().auth.resetPasswordForEmail(freshEmail('ghost'));
  assert.equal(unknown.error, null, 'no hint whether an account exists');
});

test('the admin API manages users for the service role only', async () => {
  const email = freshEmail('managed');
  const created = await admin.auth.admin.createUser({
    email, password: 'managed-pass', email_confirm: true, user_metadata: { team: 'blue' },
  });
  assert.equal(created.error, null);
  const id = created.data.user.id;
  assert.equal(created.data.user.user_metadata.team, 'blue');
  assert.ok(created.data.user.email_confirmed_at);

  const duplicate = await admin.auth.admin.createUser({ email, password: 'managed-pass' });
  assert.equal(duplicate.error.status, 422);
  assert.equal(duplicate.error.code, 'email_exists');

  const fetched = await admin.auth.admin.getUserById(id);
  assert.equal(fetched.data.user.email, email);

  const page = await admin.auth.admin.listUsers({ page: 1, perPage: 2 });
  assert.equal(page.error, null);
  assert.equal(page.data.users.length, 2);
  assert.ok(page.data.total >= 2);

  const banned = await admin.auth.admin.updateUserById(id, { ban_duration: '24h' });
  assert.equal(banned.error, null);
  assert.ok(banned.data.user.banned_until);
  const refused = await client().auth.signInWithPassword({ email, password: 'managed-pass' });
  assert.equal(refused.error.code, 'user_banned');
  await admin.auth.admin.updateUserById(id, { ban_duration: 'none' });
  assert.equal((await client().auth.signInWithPassword({ email, password: 'managed-pass' })).error, null);

  const notAdmin = await client().auth.admin.listUsers();
  assert.equal(notAdmin.error.status, 403);
  assert.equal(notAdmin.error.code, 'not_admin');

  assert.equal((await admin.auth.admin.deleteUser(id)).error, null);
  const missing = await admin.auth.admin.getUserById(id);
  assert.equal(missing.error.status, 404);
});

test('a signed-in user reads and writes only its own rows under RLS', async () => {
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  await db.query(`create table if not exists public.todos (
      id serial primary key, owner_id uuid not null default auth.uid() references auth.users(id) on delete cascade,
      title text not null);
    alter table public.todos enable row level security;
    drop policy if exists own_todos on public.todos;
    create policy own_todos on public.todos for all to authenticated
      using (auth.uid() = owner_id) with check (auth.uid() = owner_id);`);
  await db.end();

  const alice = client();
  const bob = client();
  await alice.auth.signUp({ email: freshEmail('alice'), password: 'alice-pass' });
  await bob.auth.signUp({ email: freshEmail('bob'), password: 'bob-pass-1' });
  // The data API (/rest/v1) is its own issue; until then the user's session
  // reaches Postgres through a function, as the caller's role and claims.
  const sql = (c, query, params = []) =>
    c.functions.invoke('misbehave?mode=sql', { body: { sql: query, params } });

  const wrote = await sql(alice, 'insert into public.todos (title) values ($1) returning title', ['alice todo']);
  assert.equal(wrote.error, null);
  assert.deepEqual(wrote.data.rows, [{ title: 'alice todo' }]);
  await sql(bob, 'insert into public.todos (title) values ($1)', ['bob todo']);

  const aliceSees = await sql(alice, 'select title from public.todos order by id');
  assert.deepEqual(aliceSees.data.rows, [{ title: 'alice todo' }]);
  const bobEdits = await sql(bob, "update public.todos set title = 'hijacked' returning id");
  assert.deepEqual(bobEdits.data.rows, [{ id: (await sql(bob, 'select id from public.todos')).data.rows[0].id }]);
  const aliceAgain = await sql(alice, 'select title from public.todos');
  assert.deepEqual(aliceAgain.data.rows, [{ title: 'alice todo' }], "bob's update touched only bob's row");
});

test('failed sign-ins are rate limited per email with Retry-After', async () => {
  const email = freshEmail('limited');
  await client().auth.signUp({ email, password: 'right-password' });
  // The harness sets 3 failures per email per window.
  for (let i = 0; i < 3; i++) {
    const r = await client().auth.signInWithPassword({ email, password: `wrong-${i}` });
    assert.equal(r.error.code, 'invalid_credentials');
  }
  const limited = await fetch(`${url}/auth/v1/token?grant_type=password`, {
    method: 'POST',
    headers: { apikey: anonKey, 'content-type': 'application/json' },
    body: JSON.stringify({ email, password: 'right-password' }),
  });
  assert.equal(limited.status, 429);
  assert.ok(Number(limited.headers.get('retry-after')) > 0);
  assert.equal((await limited.json()).code, 'over_request_rate_limit');
});

test('bad bearer tokens get GoTrue 403 bad_jwt and a missing session 403 session_not_found', async () => {
  const forged = await fetch(`${url}/auth/v1/user`, {
    headers: { apikey: anonKey, authorization: 'Bearer not.a.jwt' },
  });
  assert.equal(forged.status, 403);
  assert.equal((await forged.json()).code, 'bad_jwt');

  const supabase = client();
  const { data } = await supabase.auth.signUp({ email: freshEmail('gone'), password: 'gone-pass-1' });
  const token = data.session.access_token;
  await fetch(`${url}/auth/v1/logout?scope=global`, {
    method: 'POST', headers: { apikey: anonKey, authorization: `Bearer ${token}` },
  });
  const after = await fetch(`${url}/auth/v1/user`, {
    headers: { apikey: anonKey, authorization: `Bearer ${token}` },
  });
  assert.equal(after.status, 403);
  assert.equal((await after.json()).code, 'session_not_found');
});
