// Sign-up with email confirmation (the host runs with --auth-autoconfirm
// false): no session until the mailed link or code is used.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from '@supabase/supabase-js';
import pg from 'pg';
import ws from 'ws';

const url = process.env.SELFDB_URL;
const anonKey = process.env.SELFDB_ANON_KEY;
const databaseUrl = process.env.SELFDB_DATABASE_URL;
const options = {
  auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  realtime: { transport: ws },
};
const client = () => createClient(url, anonKey, options);

async function lastMail(recipient) {
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    const { rows } = await db.query(
      'select body, kind from selfdb.mail_outbox where recipient = $1 order by id desc limit 1',
      [recipient],
    );
    return rows[0];
  } finally {
    await db.end();
  }
}

test('sign-up waits for the mailed confirmation', async () => {
  const email = `confirm-${Date.now()}@example.com`;
  const signUp = await client().auth.signUp({ email, password: 'confirm-me-1' });
  assert.equal(signUp.error, null);
  assert.equal(signUp.data.session, null, 'no session before confirmation');
  assert.equal(signUp.data.user.email, email);
  assert.ok(signUp.data.user.confirmation_sent_at);

  const early = await client().auth.signInWithPassword({ email, password: 'confirm-me-1' });
  assert.equal(early.error.code, 'email_not_confirmed');

  const mail = await lastMail(email);
  assert.equal(mail.kind, 'signup');
  const tokenHash = mail.body.match(/token=([0-9a-f]{56})&type=signup/)[1];
  const supabase = client();
  const verified = await supabase.auth.verifyOtp({ token_hash: tokenHash, type: 'signup' });
  assert.equal(verified.error, null);
  assert.ok(verified.data.session?.access_token);
  assert.ok(verified.data.user.email_confirmed_at);

  const again = await client().auth.verifyOtp({ token_hash: tokenHash, type: 'signup' });
  assert.equal(again.error.code, 'otp_expired');
  assert.equal((await client().auth.signInWithPassword({ email, password: 'confirm-me-1' })).error, null);

  // Signing up again with a confirmed address reveals nothing.
  const repeat = await client().auth.signUp({ email, password: 'confirm-me-1' });
  assert.equal(repeat.error, null);
  assert.notEqual(repeat.data.user.id, signUp.data.user.id);
  assert.deepEqual(repeat.data.user.identities, []);
});

test('the link in the mail redirects with the session in the fragment', async () => {
  const email = `link-${Date.now()}@example.com`;
  await client().auth.signUp({ email, password: 'link-pass-1' });
  const mail = await lastMail(email);
  const link = mail.body.match(/(http\S+\/auth\/v1\/verify\?\S+)/)[1];
  const res = await fetch(link, { redirect: 'manual' });
  assert.equal(res.status, 303);
  const location = new URL(res.headers.get('location'));
  const fragment = new URLSearchParams(location.hash.slice(1));
  assert.ok(fragment.get('access_token'));
  assert.ok(fragment.get('refresh_token'));
  assert.equal(fragment.get('type'), 'signup');

  const reused = await fetch(link, { redirect: 'manual' });
  const error = new URLSearchParams(new URL(reused.headers.get('location')).hash.slice(1));
  assert.equal(error.get('error_code'), 'otp_expired');
});
