// Loads the same 10,000 rows into SelfDB (through psql, by run.sh) and
// PocketBase (through its API, here), with the same access rule: anonymous
// readers see rows whose `public` flag is set.
const pb = process.env.PB_URL;
const email = process.env.PB_EMAIL;
const password = process.env.PB_PASSWORD;
const rows = Number(process.env.BENCH_ROWS ?? 10000);

async function call(method, path, body, token) {
  const res = await fetch(`${pb}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: token } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

const { token } = await call('POST', '/api/collections/_superusers/auth-with-password', { identity: email, password });
await call('POST', '/api/collections', {
  name: 'items',
  type: 'base',
  listRule: 'public = true',
  viewRule: 'public = true',
  fields: [
    { name: 'title', type: 'text' },
    { name: 'category', type: 'number' },
    { name: 'score', type: 'number' },
    { name: 'public', type: 'bool' },
  ],
  indexes: ['CREATE INDEX idx_items_category_score ON items (category, score)'],
}, token);

let next = 1;
async function worker() {
  while (next <= rows) {
    const i = next++;
    await call('POST', '/api/collections/items/records', {
      id: `r${String(i).padStart(14, '0')}`,
      title: `item ${i}`,
      category: i % 50,
      score: (i * 7919) % 10007,
      public: i % 10 !== 0,
    }, token);
  }
}
await Promise.all(Array.from({ length: 16 }, worker));
console.log(`PocketBase: ${rows} records loaded`);
