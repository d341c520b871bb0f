// Auth throughput against a running host: sign-in (argon2id-bound) and
// refresh-token rotation, each with concurrent workers for a fixed time.
// Plain fetch, no dependencies. Called by bench/run.sh.
const url = process.env.SELFDB_URL;
const anon = process.env.SELFDB_ANON_KEY;
const service = process.env.SELFDB_SERVICE_KEY;
const seconds = Number(process.env.BENCH_AUTH_SECONDS ?? 8);
const workers = Number(process.env.BENCH_AUTH_WORKERS ?? 16);

async function call(path, body, key = anon) {
  const res = await fetch(`${url}/auth/v1${path}`, {
    method: 'POST',
    headers: { apikey: key, authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

async function measure(name, setup, step) {
  const latencies = [];
  const deadline = Date.now() + seconds * 1000;
  const states = await Promise.all(Array.from({ length: workers }, (_, i) => setup(i)));
  const started = performance.now();
  const failures = [];
  await Promise.all(states.map(async (state) => {
    while (Date.now() < deadline) {
      const t = performance.now();
      try {
        await step(state);
        latencies.push(performance.now() - t);
      } catch (err) {
        // A failed call is reported, not hidden in the averages; the
        // worker goes on with a fresh session where it needs one.
        failures.push(err.message);
        if (state.recover) await state.recover();
      }
    }
  }));
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))].toFixed(1);
  console.log(`${name.padEnd(28)} ${(latencies.length / elapsed).toFixed(1).padStart(8)} ops/s   p50 ${pct(0.5)} ms   p99 ${pct(0.99)} ms   (${workers} workers, ${seconds}s)`);
  if (failures.length > 0) {
    console.log(`${''.padEnd(28)} ${failures.length} failed calls, first: ${failures[0]}`);
  }
}

const stamp = Date.now();
const users = await Promise.all(Array.from({ length: workers }, async (_, i) => {
  const email = `bench-${stamp}-${i}@example.com`;
  await call('/admin/users', { email, password: 'bench-password', email_confirm: true }, service);
  return email;
}));

await measure('sign-in (password grant)', (i) => ({ email: users[i] }), async (s) => {
  await call('/token?grant_type=password', { email: s.email, password: 'bench-password' });
});

await measure('refresh (token rotation)', async (i) => {
  const signIn = () => call('/token?grant_type=password', { email: users[i], password: 'bench-password' });
  const state = { token: (await signIn()).refresh_token };
  state.recover = async () => { state.token = (await signIn()).refresh_token; };
  return state;
}, async (s) => {
  const session = await call('/token?grant_type=refresh_token', { refresh_token: s.token });
  s.token = session.refresh_token;
});
