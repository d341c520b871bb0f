// The Storage API (/storage/v1) through the real supabase-js client
// (storage-js), against a SelfDB host started by tests/tests/supabase_js.rs,
// and the same objects through the S3 endpoint with aws-cli.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from '@supabase/supabase-js';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import ws from 'ws';

const url = process.env.SELFDB_URL;
const anonKey = process.env.SELFDB_ANON_KEY;
const serviceKey = process.env.SELFDB_SERVICE_KEY;
const databaseUrl = process.env.SELFDB_DATABASE_URL;
const options = {
  auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  realtime: { transport: ws },
};
const service = createClient(url, serviceKey, options);
const anon = createClient(url, anonKey, options);

async function sql(text) {
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    return await db.query(text);
  } finally {
    await db.end();
  }
}

async function signedInUser(email) {
  const client = createClient(url, anonKey, options);
  const { data, error } = await client.auth.signUp({ email, password: 'correct horse 1' });
  assert.equal(error, null);
  assert.ok(data.session, 'autoconfirm gives a session');
  return { client, id: data.user.id };
}

function aws(...args) {
  return execFileSync(
    process.env.AWS_CLI || 'aws',
    ['--endpoint-url', process.env.S3_ENDPOINT, ...args],
    {
      env: {
        ...process.env,
        AWS_ACCESS_KEY_ID: process.env.S3_ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY: process.env.S3_SECRET_ACCESS_KEY,
        AWS_DEFAULT_REGION: 'us-east-1',
        AWS_CONFIG_FILE: '/dev/null',
        AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
      },
    },
  );
}

function md5(bytes) {
  return createHash('md5').update(bytes).digest('hex');
}

async function bytesOf(blob) {
  return Buffer.from(await blob.arrayBuffer());
}

let alice;
let bob;

before(async () => {
  alice = await signedInUser('alice-storage@example.com');
  bob = await signedInUser('bob-storage@example.com');
  // Supabase's usual policies: users manage files in their own folder of
  // "private"; anyone may read "avatars".
  await sql(`
    create policy "own folder read" on storage.objects for select to authenticated
      using (bucket_id = 'private' and (storage.foldername(name))[1] = auth.uid()::text);
    create policy "own folder write" on storage.objects for insert to authenticated
      with check (bucket_id = 'private' and (storage.foldername(name))[1] = auth.uid()::text);
    create policy "own folder update" on storage.objects for update to authenticated
      using (bucket_id = 'private' and owner_id = auth.uid()::text);
    create policy "own folder delete" on storage.objects for delete to authenticated
      using (bucket_id = 'private' and owner_id = auth.uid()::text);
    create policy "buckets are visible" on storage.buckets for select to authenticated using (true);
  `);
  for (const [id, isPublic] of [['private', false], ['avatars', true]]) {
    const { error } = await service.storage.createBucket(id, { public: isPublic });
    assert.equal(error, null);
  }
});

test('buckets: create, get, list, update, empty, delete', async () => {
  const { data: created, error } = await service.storage.createBucket('scratch', {
    public: false,
    fileSizeLimit: '1MB',
    allowedMimeTypes: ['image/*', 'text/plain'],
  });
  assert.equal(error, null);
  assert.deepEqual(created, { name: 'scratch' });
  const { data: bucket } = await service.storage.getBucket('scratch');
  assert.equal(bucket.id, 'scratch');
  assert.equal(bucket.public, false);
  assert.equal(bucket.file_size_limit, 1024 * 1024);
  assert.deepEqual(bucket.allowed_mime_types, ['image/*', 'text/plain']);
  const { data: list } = await service.storage.listBuckets();
  assert.deepEqual(list.map((b) => b.id).sort(), ['avatars', 'private', 'scratch']);

  const duplicate = await service.storage.createBucket('scratch');
  assert.equal(duplicate.error.status, 409);

  const scratch = service.storage.from('scratch');
  assert.equal((await scratch.upload('a.txt', Buffer.from('a'), { contentType: 'text/plain' })).error, null);
  const badType = await scratch.upload('a.html', Buffer.from('<b>'), { contentType: 'text/html' });
  assert.equal(badType.error.status, 415);
  const tooBig = await scratch.upload('big.txt', Buffer.alloc(1024 * 1024 + 1), { contentType: 'text/plain' });
  assert.equal(tooBig.error.status, 413);

  const notEmpty = await service.storage.deleteBucket('scratch');
  assert.equal(notEmpty.error.status, 409);
  assert.equal((await service.storage.updateBucket('scratch', { public: true, fileSizeLimit: null })).error, null);
  const { data: updated } = await service.storage.getBucket('scratch');
  assert.equal(updated.public, true);
  assert.equal(updated.file_size_limit, null);
  assert.deepEqual((await service.storage.emptyBucket('scratch')).data, { message: 'Successfully emptied' });
  assert.deepEqual((await service.storage.deleteBucket('scratch')).data, { message: 'Successfully deleted' });
  assert.equal((await service.storage.getBucket('scratch')).error.status, 404);

  // No policy lets users create buckets.
  const denied = await alice.client.storage.createBucket('mine');
  assert.equal(denied.error.status, 403);
});

test('objects: upload, download, info, exists, list, move, copy, remove', async () => {
  const files = alice.client.storage.from('private');
  const folder = alice.id;
  const body = Buffer.from('hello from storage-js');
  const up = await files.upload(`${folder}/docs/hello.txt`, body, {
    contentType: 'text/plain',
    metadata: { purpose: 'test' },
  });
  assert.equal(up.error, null);
  assert.equal(up.data.path, `${folder}/docs/hello.txt`);
  assert.equal(up.data.fullPath, `private/${folder}/docs/hello.txt`);
  assert.ok(up.data.id);

  const again = await files.upload(`${folder}/docs/hello.txt`, Buffer.from('x'));
  assert.equal(again.error.status, 409, 'upload without upsert does not overwrite');
  const { data: downloaded } = await files.download(`${folder}/docs/hello.txt`);
  assert.deepEqual(await bytesOf(downloaded), body);
  assert.equal(downloaded.type, 'text/plain');

  const { data: info, error: infoError } = await files.info(`${folder}/docs/hello.txt`);
  assert.equal(infoError, null);
  assert.equal(info.size, body.length);
  assert.equal(info.contentType, 'text/plain');
  assert.equal(info.etag, `"${md5(body)}"`);
  assert.deepEqual(info.metadata, { purpose: 'test' });
  assert.equal((await files.exists(`${folder}/docs/hello.txt`)).data, true);
  assert.equal((await files.exists(`${folder}/docs/nope.txt`)).data, false);

  const replaced = await files.update(`${folder}/docs/hello.txt`, Buffer.from('v2'), { contentType: 'text/plain' });
  assert.equal(replaced.error, null);
  assert.equal((await (await files.download(`${folder}/docs/hello.txt`)).data.text()), 'v2');
  const upsert = await files.upload(`${folder}/docs/hello.txt`, Buffer.from('v3'), { upsert: true });
  assert.equal(upsert.error, null);

  // A Blob goes as multipart/form-data.
  const blob = new Blob([randomBytes(70_000)], { type: 'image/png' });
  const form = await files.upload(`${folder}/img/pic.png`, blob, { cacheControl: '60' });
  assert.equal(form.error, null);
  const { data: pic } = await files.download(`${folder}/img/pic.png`);
  assert.equal(pic.type, 'image/png');
  assert.deepEqual(await bytesOf(pic), Buffer.from(await blob.arrayBuffer()));
  const picInfo = (await files.info(`${folder}/img/pic.png`)).data;
  assert.equal(picInfo.cacheControl, 'max-age=60');

  for (const name of ['b.txt', 'a.txt', 'c.md']) {
    assert.equal((await files.upload(`${folder}/list/${name}`, Buffer.from(name))).error, null);
  }
  assert.equal((await files.upload(`${folder}/list/sub/deep.txt`, Buffer.from('d'))).error, null);
  const { data: listed } = await files.list(`${folder}/list`);
  assert.deepEqual(listed.map((e) => e.name), ['a.txt', 'b.txt', 'c.md', 'sub']);
  const sub = listed.find((e) => e.name === 'sub');
  assert.equal(sub.id, null, 'folders have no id');
  assert.equal(listed[0].metadata.size, 5);
  const { data: page } = await files.list(`${folder}/list`, { limit: 2, offset: 1, sortBy: { column: 'name', order: 'desc' } });
  assert.deepEqual(page.map((e) => e.name), ['c.md', 'b.txt']);
  const { data: searched } = await files.list(`${folder}/list`, { search: 'b' });
  assert.deepEqual(searched.map((e) => e.name), ['b.txt']);
  const { data: root } = await files.list(folder);
  assert.deepEqual(root.map((e) => e.name), ['docs', 'img', 'list']);

  assert.equal((await files.move(`${folder}/list/a.txt`, `${folder}/moved/a.txt`)).error, null);
  assert.equal((await files.exists(`${folder}/list/a.txt`)).data, false);
  assert.equal(await (await files.download(`${folder}/moved/a.txt`)).data.text(), 'a.txt');
  const copied = await files.copy(`${folder}/moved/a.txt`, `${folder}/copied/a.txt`);
  assert.equal(copied.error, null);
  assert.equal(copied.data.path, `private/${folder}/copied/a.txt`);
  assert.equal(await (await files.download(`${folder}/copied/a.txt`)).data.text(), 'a.txt');

  const { data: removed } = await files.remove([`${folder}/moved/a.txt`, `${folder}/copied/a.txt`, `${folder}/none`]);
  assert.deepEqual(removed.map((o) => o.name).sort(), [`${folder}/copied/a.txt`, `${folder}/moved/a.txt`]);
  assert.equal((await files.download(`${folder}/moved/a.txt`)).error.status, 404);
});

test('row-level security: users reach only their own folder', async () => {
  const mine = alice.client.storage.from('private');
  const theirs = bob.client.storage.from('private');
  const key = `${alice.id}/secret.txt`;
  assert.equal((await mine.upload(key, Buffer.from('alice only'))).error, null);

  assert.equal((await theirs.download(key)).error.status, 404);
  assert.equal((await theirs.info(key)).error.status, 404);
  assert.equal((await theirs.createSignedUrl(key, 60)).error.status, 404);
  const { data: bobList } = await theirs.list(alice.id);
  assert.deepEqual(bobList, []);
  const overwrite = await theirs.upload(key, Buffer.from('bob was here'), { upsert: true });
  assert.ok(overwrite.error, 'bob cannot overwrite');
  const intoTheirs = await theirs.upload(`${alice.id}/planted.txt`, Buffer.from('x'));
  assert.equal(intoTheirs.error.status, 403);
  assert.equal(intoTheirs.error.message, 'new row violates row-level security policy for table "objects"');
  const { data: removed } = await theirs.remove([key]);
  assert.deepEqual(removed, []);
  assert.ok((await theirs.move(key, `${bob.id}/stolen.txt`)).error);
  assert.equal(await (await mine.download(key)).data.text(), 'alice only');

  // Without a user, nothing in the private bucket is visible.
  assert.equal((await anon.storage.from('private').download(key)).error.status, 404);
  const unsigned = await fetch(`${url}/storage/v1/object/private/${key}`);
  assert.equal(unsigned.status, 401);
  assert.equal((await unsigned.json()).statusCode, '401');
});

test('public buckets are readable by anyone at their public URL', async () => {
  const avatars = service.storage.from('avatars');
  assert.equal((await avatars.upload('u/face.png', Buffer.from('png bytes'), { contentType: 'image/png' })).error, null);
  const { data } = anon.storage.from('avatars').getPublicUrl('u/face.png');
  const response = await fetch(data.publicUrl);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('content-type'), 'image/png');
  assert.equal(await response.text(), 'png bytes');
  const ranged = await fetch(data.publicUrl, { headers: { range: 'bytes=0-2' } });
  assert.equal(ranged.status, 206);
  assert.equal(await ranged.text(), 'png');
  const privateUrl = anon.storage.from('private').getPublicUrl(`${alice.id}/secret.txt`).data.publicUrl;
  assert.equal((await fetch(privateUrl)).status, 404);
});

test('signed download and upload URLs', async () => {
  const files = alice.client.storage.from('private');
  const key = `${alice.id}/shared/report 1.txt`;
  assert.equal((await files.upload(key, Buffer.from('signed content'))).error, null);
  const { data: signed, error } = await files.createSignedUrl(key, 60);
  assert.equal(error, null);
  const fetched = await fetch(signed.signedUrl);
  assert.equal(fetched.status, 200);
  assert.equal(await fetched.text(), 'signed content');
  const asDownload = await files.createSignedUrl(key, 60, { download: 'report.txt' });
  const disposition = (await fetch(asDownload.data.signedUrl)).headers.get('content-disposition');
  assert.match(disposition, /attachment; filename\*=UTF-8''report\.txt/);

  const other = signed.signedUrl.replace('report%201.txt', 'other.txt');
  assert.equal((await fetch(other)).status, 400, 'a token names one object');
  const { data: many } = await files.createSignedUrls([key, `${alice.id}/nope.txt`], 60);
  assert.equal(many[0].error, null);
  assert.equal(await (await fetch(many[0].signedUrl)).text(), 'signed content');
  assert.ok(many[1].error);
  assert.equal(many[1].signedUrl, null);

  const target = `${alice.id}/uploads/via-link.txt`;
  const { data: uploadLink, error: linkError } = await files.createSignedUploadUrl(target);
  assert.equal(linkError, null);
  assert.ok(uploadLink.token);
  const viaLink = await anon.storage
    .from('private')
    .uploadToSignedUrl(target, uploadLink.token, Buffer.from('uploaded with a link'), { contentType: 'text/plain' });
  assert.equal(viaLink.error, null);
  assert.equal(await (await files.download(target)).data.text(), 'uploaded with a link');
  const { data: uploadedInfo } = await files.info(target);
  assert.ok(uploadedInfo, 'the uploader owns the object, so the policies show it to her');

  const refused = await bob.client.storage.from('private').createSignedUploadUrl(`${alice.id}/evil.txt`);
  assert.equal(refused.error.status, 403);
  const forged = await anon.storage.from('private').uploadToSignedUrl(`${alice.id}/x.txt`, 'not-a-token', Buffer.from('x'));
  assert.equal(forged.error.status, 400);
});

test('hostile paths are data, never paths on disk', async () => {
  const bucket = service.storage.from('avatars');
  for (const key of ["..%2F..%2Fetc%2Fpasswd", "back\\slash", "quote'\";--", "ünïcödé/日本語.txt"]) {
    const { error } = await bucket.upload(key, Buffer.from(key), { upsert: true });
    assert.equal(error, null, key);
    assert.equal(await (await bucket.download(key)).data.text(), key);
  }
  const long = await bucket.upload('k'.repeat(1100), Buffer.from('x'));
  assert.equal(long.error.status, 400);
  const nul = await fetch(`${url}/storage/v1/object/avatars/nul%00byte`, {
    method: 'POST',
    headers: { apikey: serviceKey, authorization: `Bearer ${serviceKey}` },
    body: 'x',
  });
  assert.equal(nul.status, 400);
  const body = await nul.json();
  assert.equal(body.statusCode, '400');
  assert.ok(body.message);
  const malformed = await fetch(`${url}/storage/v1/bucket`, {
    method: 'POST',
    headers: { apikey: serviceKey, authorization: `Bearer ${serviceKey}`, 'content-type': 'application/json' },
    body: '{"name": ',
  });
  assert.equal(malformed.status, 400);
  assert.equal((await malformed.json()).statusCode, '400');
});

test('the REST API and the S3 endpoint show the same objects', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'selfdb-cross-'));
  // S3 to storage-js.
  const bytes = randomBytes(300_000);
  writeFileSync(join(dir, 'from-s3.bin'), bytes);
  aws('s3', 'cp', '--no-progress', join(dir, 'from-s3.bin'), 's3://avatars/cross/from-s3.bin');
  const { data: viaRest } = await service.storage.from('avatars').download('cross/from-s3.bin');
  assert.deepEqual(await bytesOf(viaRest), bytes);
  const { data: restInfo } = await service.storage.from('avatars').info('cross/from-s3.bin');
  assert.equal(restInfo.etag, `"${md5(bytes)}"`);
  // storage-js to S3.
  const other = randomBytes(123_456);
  assert.equal((await service.storage.from('avatars').upload('cross/from-rest.bin', other)).error, null);
  aws('s3', 'cp', '--no-progress', 's3://avatars/cross/from-rest.bin', join(dir, 'from-rest.bin'));
  assert.deepEqual(readFileSync(join(dir, 'from-rest.bin')), other);
  const listing = aws('s3', 'ls', 's3://avatars/cross/').toString();
  assert.match(listing, /from-rest\.bin/);
  assert.match(listing, /from-s3\.bin/);
});
