// A project (a user's own database registered by URL) through the real
// supabase-js client, pointed at `{SELFDB_URL}/projects/{id}` with the
// project's key, as a Supabase app would move to it. The tables were made
// by tests/tests/all/supabase_js.rs with plain SQL, never migrated.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from '@supabase/supabase-js';
import ws from 'ws';

const url = `${process.env.SELFDB_URL}/projects/${process.env.SELFDB_PROJECT_ID}`;
const key = process.env.SELFDB_PROJECT_KEY;
const options = {
  auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  realtime: { transport: ws },
};
const client = createClient(url, key, options);

test('select, filter, order and embed over the project database', async () => {
  const { data, error } = await client
    .from('books')
    .select('title, author:authors(name)')
    .gte('pages', 100)
    .order('title');
  assert.equal(error, null);
  assert.deepEqual(data, [
    { title: 'Dune', author: { name: 'Herbert' } },
    { title: 'Emma', author: { name: 'Austen' } },
  ]);
  const { count } = await client.from('books').select('*', { count: 'exact', head: true });
  assert.equal(count, 3);
});

test('insert, update, upsert and delete return the rows', async () => {
  const inserted = await client.from('books').insert({ id: 10, title: 'Persuasion', pages: 250, author_id: 1 }).select();
  assert.equal(inserted.error, null);
  assert.equal(inserted.data[0].title, 'Persuasion');
  const updated = await client.from('books').update({ pages: 260 }).eq('id', 10).select('pages');
  assert.deepEqual(updated.data, [{ pages: 260 }]);
  const upserted = await client.from('books').upsert({ id: 10, title: 'Persuasion', pages: 270, author_id: 1 }).select('pages');
  assert.deepEqual(upserted.data, [{ pages: 270 }]);
  const conflict = await client.from('books').insert({ id: 10, title: 'Again', pages: 1, author_id: 1 });
  assert.equal(conflict.status, 409);
  assert.equal(conflict.error.code, '23505');
  const deleted = await client.from('books').delete().eq('id', 10).select('id');
  assert.deepEqual(deleted.data, [{ id: 10 }]);
});

test('full-text search', async () => {
  const { data, error } = await client
    .from('books')
    .select('title')
    .textSearch('search', 'desert & spice', { config: 'english' });
  assert.equal(error, null);
  assert.deepEqual(data, [{ title: 'Dune' }]);
  const web = await client
    .from('books')
    .select('title')
    .textSearch('search', '"country house"', { type: 'websearch', config: 'english' });
  assert.deepEqual(web.data, [{ title: 'Emma' }]);
});

test('rpc calls the database functions', async () => {
  const { data, error } = await client.rpc('page_total');
  assert.equal(error, null);
  assert.equal(data, 912);
});

test('a wrong key is refused', async () => {
  const other = createClient(url, 'sdbp_not-the-key', options);
  const { error, status } = await other.from('books').select('title');
  assert.ok(error);
  assert.equal(status, 401);
});
