// The data API (/rest/v1) through the real supabase-js client (postgrest-js)
// against a SelfDB host started by tests/tests/supabase_js.rs.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from '@supabase/supabase-js';
import pg from 'pg';
import ws from 'ws';
import http from 'node:http';

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

async function sql(text) {
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    return await db.query(text);
  } finally {
    await db.end();
  }
}

async function waitForTable(name) {
  const started = Date.now();
  while (Date.now() - started < 5000) {
    const { error } = await service.from(name).select('*').limit(1);
    if (!error) return Date.now() - started;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`${name} never became servable`);
}

before(async () => {
  await sql(`
    create table authors (id serial primary key, name text not null unique);
    create table posts (
      id serial primary key,
      author_id int references authors(id),
      title text not null,
      rating int,
      tags text[] not null default '{}',
      data jsonb,
      body text,
      created date default '2024-01-01'
    );
    insert into authors (name) values ('Ada'), ('Grace'), ('Linus');
    insert into posts (author_id, title, rating, tags, data, body) values
      (1, 'Engines', 5, '{math,history}', '{"meta": {"lang": "en"}, "n": 1}', 'the analytical engine weaves algebraic patterns'),
      (1, 'Notes', 3, '{math}', '{"meta": {"lang": "fr"}, "n": 2}', 'notes on the engine by the translator'),
      (2, 'Compilers', 4, '{cs}', '{"meta": {"lang": "en"}, "n": 3}', 'a compiler translates programs'),
      (2, 'Bugs', null, '{cs,history}', null, 'a moth was found in the relay'),
      (3, 'Kernels', 2, '{cs,os}', '{"meta": {"lang": "fi"}, "n": 5}', 'just a hobby, won''t be big');
    create function add_numbers(a int, b int default 10) returns int language sql stable as 'select a + b';
    create function posts_by(author text) returns setof posts language sql stable as
      'select p.* from posts p join authors a on a.id = p.author_id where a.name = author order by p.id';
    create function describe(n int) returns text language sql immutable as $$ select 'number ' || n $$;
    create function describe(word text, times int default 1) returns text language sql immutable as $$ select 'word ' || repeat(word, times) $$;
    create function bump(post int) returns void language sql as 'update posts set rating = coalesce(rating, 0) + 1 where id = post';
    create function rated(min_rating int) returns table(title text, stars int) language sql stable as
      'select title, rating from posts where rating >= min_rating order by id';
    create function divide(dividend int, divisor int, out quotient int, out remainder int) language sql immutable as
      'select dividend / divisor, dividend % divisor';
    create function scale(inout x int, inout y int, factor int default 2) language sql immutable as
      'select x * factor, y * factor';
    create table notes (
      id serial primary key,
      owner_id uuid not null default auth.uid() references auth.users(id) on delete cascade,
      body text not null
    );
    alter table notes enable row level security;
    create policy own_notes on notes for all to authenticated
      using (auth.uid() = owner_id) with check (auth.uid() = owner_id);
  `);
  for (const name of ['authors', 'posts', 'notes']) await waitForTable(name);
});

test('select: columns, aliases, casts, JSON paths and embedding both ways', async () => {
  const { data, error } = await anon
    .from('posts')
    .select('id, heading:title, rating::text, lang:data->meta->>lang, author:authors(name)')
    .eq('id', 1);
  assert.equal(error, null);
  assert.deepEqual(data, [{ id: 1, heading: 'Engines', rating: '5', lang: 'en', author: { name: 'Ada' } }]);

  const authors = await anon
    .from('authors')
    .select('name, posts(title)')
    .order('id')
    .order('id', { referencedTable: 'posts', ascending: false })
    .limit(1, { referencedTable: 'posts' });
  assert.equal(authors.error, null);
  assert.deepEqual(authors.data, [
    { name: 'Ada', posts: [{ title: 'Notes' }] },
    { name: 'Grace', posts: [{ title: 'Bugs' }] },
    { name: 'Linus', posts: [{ title: 'Kernels' }] },
  ]);

  const inner = await anon.from('posts').select('title, authors!inner(name)').eq('authors.name', 'Grace').order('id');
  assert.deepEqual(inner.data.map((p) => p.title), ['Compilers', 'Bugs']);

  const spread = await anon.from('posts').select('title, ...authors(author_name:name, id)').eq('id', 3);
  assert.equal(spread.error, null);
  assert.deepEqual(spread.data, [{ title: 'Compilers', author_name: 'Grace', id: 2 }]);
  const spreadMany = await anon.from('authors').select('name, ...posts(title)');
  assert.equal(spreadMany.status, 400);
});

test('filters: every operator, negation and nested or/and', async () => {
  const ids = async (q) => {
    const { data, error } = await q.order('id');
    assert.equal(error, null);
    return data.map((r) => r.id);
  };
  const posts = () => anon.from('posts').select('id');
  assert.deepEqual(await ids(posts().eq('rating', 5)), [1]);
  assert.deepEqual(await ids(posts().neq('rating', 5)), [2, 3, 5]);
  assert.deepEqual(await ids(posts().gt('rating', 3)), [1, 3]);
  assert.deepEqual(await ids(posts().gte('rating', 3)), [1, 2, 3]);
  assert.deepEqual(await ids(posts().lt('rating', 3)), [5]);
  assert.deepEqual(await ids(posts().lte('rating', 3)), [2, 5]);
  assert.deepEqual(await ids(posts().like('title', '%ngin%')), [1]);
  assert.deepEqual(await ids(posts().ilike('title', 'n%')), [2]);
  assert.deepEqual(await ids(posts().match({ author_id: 2, title: 'Bugs' })), [4]);
  assert.deepEqual(await ids(posts().filter('title', 'match', '^[CK]')), [3, 5]);
  assert.deepEqual(await ids(posts().filter('title', 'imatch', '^b')), [4]);
  assert.deepEqual(await ids(posts().is('rating', null)), [4]);
  assert.deepEqual(await ids(posts().in('id', [2, 4, 99])), [2, 4]);
  assert.deepEqual(await ids(posts().in('title', ['Bugs', 'a,b "quoted"'])), [4]);
  assert.deepEqual(await ids(posts().contains('tags', ['cs', 'history'])), [4]);
  assert.deepEqual(await ids(posts().containedBy('tags', ['math', 'history'])), [1, 2]);
  assert.deepEqual(await ids(posts().overlaps('tags', ['os', 'history'])), [1, 4, 5]);
  assert.deepEqual(await ids(posts().contains('data', { meta: { lang: 'en' } })), [1, 3]);
  assert.deepEqual(await ids(posts().textSearch('body', "'engine' & 'notes'")), [2]);
  assert.deepEqual(await ids(posts().textSearch('body', 'analytical engine', { type: 'plain', config: 'english' })), [1]);
  assert.deepEqual(await ids(posts().textSearch('body', 'a moth', { type: 'phrase' })), [4]);
  assert.deepEqual(await ids(posts().textSearch('body', 'compiler or hobby', { type: 'websearch' })), [3, 5]);
  assert.deepEqual(await ids(posts().not('rating', 'is', null).not('title', 'in', '(Engines,Notes)')), [3, 5]);
  assert.deepEqual(await ids(posts().or('rating.eq.5,and(author_id.eq.2,rating.is.null)')), [1, 4]);
  assert.deepEqual(await ids(posts().or('title.eq.Kernels,not.and(rating.gte.3,author_id.eq.1)').gt('id', 2)), [3, 4, 5]);
  assert.deepEqual(await ids(posts().eq('data->meta->>lang', 'fi')), [5]);
});

test('order, limit, offset, range and counts', async () => {
  const ordered = await anon.from('posts').select('id').order('rating', { ascending: false, nullsFirst: true }).order('id');
  assert.deepEqual(ordered.data.map((r) => r.id), [4, 1, 3, 2, 5]);

  const page = await anon.from('posts').select('id', { count: 'exact' }).order('id').range(1, 2);
  assert.equal(page.error, null);
  assert.deepEqual(page.data.map((r) => r.id), [2, 3]);
  assert.equal(page.count, 5);

  const limited = await anon.from('posts').select('id').order('id').limit(2);
  assert.deepEqual(limited.data.map((r) => r.id), [1, 2]);

  const head = await anon.from('posts').select('*', { count: 'exact', head: true }).gt('rating', 2);
  assert.equal(head.count, 3);
  assert.equal(head.data, null);

  // The select list binds parameters of its own (the JSON path's keys); the
  // count binds only the filter's.
  const pathCount = await anon.from('posts').select('id, lang:data->meta->>lang', { count: 'exact' }).gt('rating', 2);
  assert.equal(pathCount.error, null);
  assert.equal(pathCount.count, 3);

  await sql('analyze authors');
  for (const count of ['planned', 'estimated']) {
    const c = await anon.from('authors').select('id', { count });
    assert.equal(c.count, 3, count);
  }
  // Planned counts come from the planner, not from counting; estimated ones
  // count exactly below 10,000 rows.
  await sql('create table big_counts as select generate_series(1, 20000) as id; analyze big_counts');
  await waitForTable('big_counts');
  const planned = await anon.from('big_counts').select('id', { count: 'planned', head: true });
  assert.ok(Math.abs(planned.count - 20000) <= 2000, `planned ${planned.count}`);
  const estimated = await anon.from('big_counts').select('id', { count: 'estimated', head: true }).lt('id', 100);
  assert.equal(estimated.count, 99);
});

test('single objects and CSV', async () => {
  const one = await anon.from('authors').select('name').eq('id', 2).single();
  assert.deepEqual(one.data, { name: 'Grace' });
  const many = await anon.from('authors').select('name').single();
  assert.equal(many.error.code, 'PGRST116');
  assert.equal(many.status, 406);
  const none = await anon.from('authors').select('name').eq('id', 999).maybeSingle();
  assert.equal(none.data, null);
  const csv = await anon.from('authors').select('id,name').order('id').csv();
  assert.equal(csv.data, 'id,name\n1,Ada\n2,Grace\n3,Linus');
});

test('insert, upsert, update and delete with return preferences', async () => {
  const one = await service.from('authors').insert({ name: 'Margaret' }).select().single();
  assert.equal(one.error, null);
  assert.equal(one.data.name, 'Margaret');

  const many = await service.from('authors').insert([{ name: 'Barbara' }, { name: 'Frances' }]).select('name');
  assert.deepEqual(many.data, [{ name: 'Barbara' }, { name: 'Frances' }]);
  assert.equal(many.status, 201);

  const headersOnly = await fetch(`${url}/rest/v1/authors`, {
    method: 'POST',
    headers: {
      apikey: serviceKey,
      authorization: `Bearer ${serviceKey}`,
      'content-type': 'application/json',
      prefer: 'return=headers-only',
    },
    body: JSON.stringify({ name: 'Hedy' }),
  });
  assert.equal(headersOnly.status, 201);
  assert.equal(await headersOnly.text(), '');
  const location = headersOnly.headers.get('location');
  assert.match(location, /^\/authors\?id=eq\.\d+$/);
  const located = await fetch(`${url}/rest/v1${location}&select=name`, {
    headers: { apikey: serviceKey, authorization: `Bearer ${serviceKey}` },
  });
  assert.deepEqual(await located.json(), [{ name: 'Hedy' }]);

  // Missing keys take column defaults with `defaultToNull: false`
  // (`Prefer: missing=default`), and nulls without it.
  await sql(`create table drafts (id serial primary key, title text not null default 'untitled', body text default 'empty');`);
  await waitForTable('drafts');
  const withDefaults = await service
    .from('drafts')
    .insert([{ title: 'a', body: null }, { body: 'only body' }, {}], { defaultToNull: false })
    .select('title, body');
  assert.equal(withDefaults.error, null);
  assert.deepEqual(withDefaults.data, [
    { title: 'a', body: null },
    { title: 'untitled', body: 'only body' },
    { title: 'untitled', body: 'empty' },
  ]);
  const withNulls = await service.from('drafts').insert([{ title: 'b' }, { title: 'c', body: 'x' }]).select('body');
  assert.deepEqual(withNulls.data, [{ body: null }, { body: 'x' }]);

  const minimal = await service.from('authors').insert({ name: 'Radia' });
  assert.equal(minimal.error, null);
  assert.equal(minimal.status, 201);
  assert.equal(minimal.data, null);

  const merged = await service
    .from('authors')
    .upsert({ id: one.data.id, name: 'Margaret H.' })
    .select('id, name');
  assert.deepEqual(merged.data, [{ id: one.data.id, name: 'Margaret H.' }]);

  const ignored = await service
    .from('authors')
    .upsert({ name: 'Radia' }, { onConflict: 'name', ignoreDuplicates: true })
    .select();
  assert.deepEqual(ignored.data, []);

  const updated = await service.from('authors').update({ name: 'Radia P.' }).eq('name', 'Radia').select('name');
  assert.deepEqual(updated.data, [{ name: 'Radia P.' }]);

  const unfiltered = await service.from('authors').update({ name: 'everyone' });
  assert.equal(unfiltered.status, 400);
  assert.equal(unfiltered.error.code, '21000');
  const unfilteredDelete = await service.from('authors').delete();
  assert.equal(unfilteredDelete.status, 400);

  const removed = await service.from('authors').delete().in('name', ['Barbara', 'Frances']).select('name');
  assert.deepEqual(removed.data.map((r) => r.name).sort(), ['Barbara', 'Frances']);

  const put = await fetch(`${url}/rest/v1/authors?id=eq.${one.data.id}`, {
    method: 'PUT',
    headers: { apikey: serviceKey, authorization: `Bearer ${serviceKey}`, 'content-type': 'application/json', prefer: 'return=representation' },
    body: JSON.stringify({ id: one.data.id, name: 'Margaret Hamilton' }),
  });
  assert.equal(put.status, 200);
  assert.deepEqual(await put.json(), [{ id: one.data.id, name: 'Margaret Hamilton' }]);
});

test('a bulk insert and read of a few MiB outgrow the component\'s arena and still round-trip', async () => {
  // The CRUD component bump-allocates from a 1 MiB arena and falls back
  // to the system allocator past it.
  await sql('create table bulk (id int primary key, body text not null);');
  await waitForTable('bulk');
  const rows = Array.from({ length: 3000 }, (_, i) => ({ id: i + 1, body: `${i}:`.padEnd(1000, 'x') }));
  const inserted = await service.from('bulk').insert(rows).select('id');
  assert.equal(inserted.error, null);
  assert.equal(inserted.data.length, rows.length);
  const read = await service.from('bulk').select('*').order('id');
  assert.equal(read.error, null);
  assert.deepEqual(read.data, rows);
});

test('rpc with named arguments, POST and GET', async () => {
  assert.deepEqual((await anon.rpc('add_numbers', { a: 2, b: 3 })).data, 5);
  assert.deepEqual((await anon.rpc('add_numbers', { a: 2 }, { get: true })).data, 12);
  const rows = await anon.rpc('posts_by', { author: 'Grace' });
  assert.deepEqual(rows.data.map((p) => p.title), ['Compilers', 'Bugs']);
  // Overloads are told apart by their argument names.
  assert.equal((await anon.rpc('describe', { n: 7 })).data, 'number 7');
  assert.equal((await anon.rpc('describe', { word: 'ab', times: 2 })).data, 'word abab');
  assert.equal((await anon.rpc('describe', { word: 'x' }, { get: true })).data, 'word x');
  const noOverload = await anon.rpc('describe', { nope: 1 });
  assert.equal(noOverload.status, 404);
  const missing = await anon.rpc('no_such_function', {});
  assert.equal(missing.status, 404);
  assert.equal(missing.error.code, 'PGRST202');
  const volatileGet = await anon.rpc('bump', { post: 1 }, { get: true });
  assert.equal(volatileGet.status, 405);
  assert.equal((await anon.rpc('bump', { post: 4 })).error, null);
});

test('rpc results of setof-table functions take select, filters, order and limits', async () => {
  const filtered = await anon.rpc('posts_by', { author: 'Ada' }).select('title,rating').gte('rating', 4);
  assert.equal(filtered.error, null);
  assert.deepEqual(filtered.data, [{ title: 'Engines', rating: 5 }]);
  const ordered = await anon
    .rpc('posts_by', { author: 'Ada' })
    .select('title')
    .order('title', { ascending: false })
    .limit(1);
  assert.deepEqual(ordered.data, [{ title: 'Notes' }]);
  const viaGet = await anon.rpc('posts_by', { author: 'Grace' }, { get: true }).select('title').eq('title', 'Bugs');
  assert.equal(viaGet.error, null);
  assert.deepEqual(viaGet.data, [{ title: 'Bugs' }]);
  const embedded = await anon
    .rpc('posts_by', { author: 'Grace' })
    .select('title, authors(name)')
    .eq('title', 'Compilers')
    .single();
  assert.deepEqual(embedded.data, { title: 'Compilers', authors: { name: 'Grace' } });
  const badColumn = await anon.rpc('posts_by', { author: 'Grace' }).select('nope');
  assert.equal(badColumn.status, 400);
  const badFilter = await anon.rpc('posts_by', { author: 'Grace' }).eq('nope', 1);
  assert.equal(badFilter.status, 400);
});

test('rpc of functions with OUT and TABLE parameters', async () => {
  const table = await anon.rpc('rated', { min_rating: 4 });
  assert.equal(table.error, null);
  assert.deepEqual(table.data, [
    { title: 'Engines', stars: 5 },
    { title: 'Compilers', stars: 4 },
  ]);
  const filtered = await anon.rpc('rated', { min_rating: 2 }).select('title').lt('stars', 4).order('title');
  assert.equal(filtered.error, null);
  assert.deepEqual(filtered.data, [{ title: 'Kernels' }, { title: 'Notes' }]);
  const viaGet = await anon.rpc('rated', { min_rating: 5 }, { get: true }).single();
  assert.deepEqual(viaGet.data, { title: 'Engines', stars: 5 });
  const badFilter = await anon.rpc('rated', { min_rating: 1 }).eq('rating', 1);
  assert.equal(badFilter.status, 400);
  const out = await anon.rpc('divide', { dividend: 17, divisor: 5 });
  assert.equal(out.error, null);
  assert.deepEqual(out.data, { quotient: 3, remainder: 2 });
  const inout = await anon.rpc('scale', { x: 2, y: 5 }, { get: true });
  assert.deepEqual(inout.data, { x: 4, y: 10 });
  assert.deepEqual((await anon.rpc('scale', { x: 1, y: 1, factor: 3 })).data, { x: 3, y: 3 });
  const byZero = await anon.rpc('divide', { dividend: 1, divisor: 0 });
  assert.equal(byZero.status, 400);
  assert.equal(byZero.error.code, '22012');
});

test('rpc of variadic functions and array arguments, POST and GET', async () => {
  await sql(`
    create function join_words(sep text, variadic words text[]) returns text language sql immutable
      as $$ select array_to_string(words, sep) $$;
    create function total(variadic n int[]) returns int language sql immutable
      as $$ select sum(x)::int from unnest(n) x $$;
    create function count_tags(tags text[]) returns int language sql immutable
      as $$ select cardinality(tags) $$;
    grant execute on function join_words(text, text[]), total(int[]), count_tags(text[]) to anon;
  `);
  const started = Date.now();
  while ((await anon.rpc('total', { n: [1] })).error && Date.now() - started < 5000) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const posted = await anon.rpc('join_words', { sep: '-', words: ['a', 'b,c', 'say "hi"'] });
  assert.equal(posted.error, null);
  assert.equal(posted.data, 'a-b,c-say "hi"');
  assert.equal((await anon.rpc('total', { n: [1, 2, 3, 4] })).data, 10);
  assert.equal((await anon.rpc('total', { n: 5 })).data, 5, 'one value is a one-element array');
  // supabase-js sends a GET's array as one array literal ...
  const viaGet = await anon.rpc('join_words', { sep: '+', words: ['x', 'y'] }, { get: true });
  assert.equal(viaGet.error, null);
  assert.equal(viaGet.data, 'x+y');
  // ... and PostgREST's own form repeats the key.
  const repeated = await fetch(`${url}/rest/v1/rpc/total?n=1&n=2&n=40`, { headers: { apikey: anonKey } });
  assert.equal(repeated.status, 200);
  assert.equal(await repeated.json(), 43);
  const single = await fetch(`${url}/rest/v1/rpc/join_words?sep=,&words=only`, { headers: { apikey: anonKey } });
  assert.equal(await single.json(), 'only');
  // A plain array parameter takes a JSON array too.
  assert.equal((await anon.rpc('count_tags', { tags: ['a', 'b', 'c'] })).data, 3);
  const wrongType = await anon.rpc('total', { n: ['one'] });
  assert.equal(wrongType.status, 400);
  assert.equal(wrongType.error.code, '22P02');
});

test('errors carry PostgREST codes and statuses', async () => {
  const unique = await service.from('authors').insert({ name: 'Ada' });
  assert.equal(unique.status, 409);
  assert.equal(unique.error.code, '23505');
  const foreign = await service.from('posts').insert({ author_id: 999, title: 'orphan' });
  assert.equal(foreign.status, 409);
  assert.equal(foreign.error.code, '23503');
  const notNull = await service.from('posts').insert({ author_id: 1 });
  assert.equal(notNull.status, 400);
  assert.equal(notNull.error.code, '23502');
  const syntax = await anon.from('posts').select('id').eq('rating', 'five');
  assert.equal(syntax.status, 400);
  assert.equal(syntax.error.code, '22P02');
  const table = await anon.from('no_such_table').select();
  assert.equal(table.status, 404);
  assert.equal(table.error.code, 'PGRST205');
  const column = await anon.from('posts').select('nope');
  assert.equal(column.status, 400);
  assert.equal(column.error.code, '42703');
  const badFilter = await fetch(`${url}/rest/v1/posts?id=nonsense`, { headers: { apikey: anonKey } });
  assert.equal(badFilter.status, 400);
  assert.equal((await badFilter.json()).code, 'PGRST100');
  const noKey = await fetch(`${url}/rest/v1/posts`);
  assert.equal(noKey.status, 401);
  // Declares an 11 MiB body and waits for `100 Continue` before sending it,
  // as careful clients do: the host refuses from the headers alone.
  const big = await new Promise((resolve, reject) => {
    const req = http.request(`${url}/rest/v1/posts`, {
      method: 'POST',
      headers: { apikey: serviceKey, 'content-type': 'application/json', 'content-length': 11 * 1024 * 1024, expect: '100-continue' },
    });
    req.on('continue', () => reject(new Error('the host asked for an oversize body')));
    req.on('response', (res) => {
      let text = '';
      res.on('data', (chunk) => { text += chunk; });
      res.on('end', () => { req.destroy(); resolve({ status: res.statusCode, body: JSON.parse(text) }); });
    });
    req.on('error', reject);
  });
  assert.equal(big.status, 413);
  assert.ok(big.body.code);
  assert.ok(big.body.message);
});

test('row-level security: two users never see or touch each other\'s rows', async () => {
  const alice = createClient(url, anonKey, options);
  const bob = createClient(url, anonKey, options);
  const stamp = Date.now();
  const a = await alice.auth.signUp({ email: `alice-${stamp}@example.com`, password: 'alice-pass' });
  const b = await bob.auth.signUp({ email: `bob-${stamp}@example.com`, password: 'bob-pass-1' });
  const aliceId = a.data.user.id;
  const bobId = b.data.user.id;

  assert.equal((await alice.from('notes').insert({ body: 'alice secret' })).error, null);
  const bobNote = await bob.from('notes').insert({ body: 'bob secret' }).select().single();
  assert.equal(bobNote.error, null);

  const seen = await alice.from('notes').select('body, owner_id');
  assert.deepEqual(seen.data, [{ body: 'alice secret', owner_id: aliceId }]);
  const tricks = [
    alice.from('notes').select().eq('owner_id', bobId),
    alice.from('notes').select().or(`owner_id.eq.${bobId},id.gt.0`),
    alice.from('notes').select().not('owner_id', 'eq', aliceId),
    alice.from('notes').select().eq('id', bobNote.data.id),
  ];
  for (const trick of tricks) {
    const { data, error } = await trick;
    assert.equal(error, null);
    assert.ok(data.every((n) => n.owner_id === aliceId), JSON.stringify(data));
  }
  const update = await alice.from('notes').update({ body: 'hijacked' }).eq('id', bobNote.data.id).select();
  assert.deepEqual(update.data, []);
  const del = await alice.from('notes').delete().eq('id', bobNote.data.id).select();
  assert.deepEqual(del.data, []);
  const forged = await alice.from('notes').insert({ body: 'forged', owner_id: bobId });
  assert.equal(forged.status, 403);
  assert.equal(forged.error.code, '42501');
  const asAnon = await anon.from('notes').insert({ body: 'anon', owner_id: bobId });
  assert.equal(asAnon.status, 401);
  assert.deepEqual((await anon.from('notes').select()).data, []);
  const still = await bob.from('notes').select('body');
  assert.deepEqual(still.data, [{ body: 'bob secret' }]);
});

test('hostile names and values get clear 4xx and change nothing', async () => {
  const before = (await sql('select count(*)::int as n from posts')).rows[0].n;
  const nasty = `x"; drop table posts; --`;
  const hostile = [
    anon.from(nasty).select(),
    anon.from('posts').select(`id,"${nasty}"`),
    anon.from('posts').select('id').eq(nasty, 1),
    anon.from('posts').select('id').order(nasty),
    anon.from('posts').select('id::text; drop table posts'),
    service.from('posts').insert({ [nasty]: 1, title: 'x' }),
    service.from('posts').update({ title: 'y' }).eq('id', `1; drop table posts`),
  ];
  for (const request of hostile) {
    const { error, status } = await request;
    assert.ok(error, 'refused');
    assert.ok(status >= 400 && status < 500, `status ${status}`);
    assert.doesNotMatch(error.message, /syntax error at or near/);
  }
  for (const value of [`'; drop table posts; --`, 'é€😀\u0000-free', 'x'.repeat(10 * 1024), `" or 1=1 --`]) {
    const { data, error } = await anon.from('posts').select('id').eq('title', value.replace('\u0000', ''));
    assert.equal(error, null);
    assert.deepEqual(data, []);
  }
  assert.equal((await sql('select count(*)::int as n from posts')).rows[0].n, before);
});

test('a table created with psql is served within a second, without restart', async () => {
  await sql('create table fresh (id int primary key, label text); insert into fresh values (1, \'new\');');
  const took = await waitForTable('fresh');
  assert.ok(took < 1000, `took ${took} ms`);
  assert.deepEqual((await service.from('fresh').select()).data, [{ id: 1, label: 'new' }]);
});

test('GET /rest/v1/ describes tables, columns and functions', async () => {
  const res = await fetch(`${url}/rest/v1/`, { headers: { apikey: anonKey } });
  assert.equal(res.status, 200);
  const doc = await res.json();
  assert.equal(doc.swagger, '2.0');
  assert.ok(doc.paths['/posts']);
  assert.ok(doc.paths['/rpc/add_numbers']);
  assert.equal(doc.definitions.posts.properties.rating.type, 'integer');
  assert.equal(doc.definitions.posts.properties.tags.format, 'text[]');
});

test('anonymous reads see only what a policy for anon allows', async () => {
  await sql(`
    create table listings (id int primary key, title text not null, public boolean not null);
    insert into listings values (1, 'open', true), (2, 'hidden', false), (3, 'also open', true);
    alter table listings enable row level security;
    create policy public_listings on listings for select to anon using (public);
  `);
  await waitForTable('listings');
  // Repeated: later reads run on pooled connections that stay in anon.
  for (let round = 0; round < 3; round++) {
    const all = await anon.from('listings').select('id, title').order('id');
    assert.equal(all.error, null);
    assert.deepEqual(all.data, [{ id: 1, title: 'open' }, { id: 3, title: 'also open' }]);
    const hidden = await anon.from('listings').select('id').eq('id', 2);
    assert.deepEqual([hidden.error, hidden.data], [null, []]);
    const one = await anon.from('listings').select('title').eq('id', 3).single();
    assert.deepEqual([one.error, one.data], [null, { title: 'also open' }]);
    const none = await anon.from('listings').select('title').eq('id', 2).single();
    assert.equal(none.status, 406);
    const counted = await anon.from('listings').select('id', { count: 'exact', head: true });
    assert.equal(counted.count, 2);
  }
  const everything = await service.from('listings').select('id').order('id');
  assert.deepEqual(everything.data, [{ id: 1 }, { id: 2 }, { id: 3 }]);
});
