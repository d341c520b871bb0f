// The JavaScript twin of components/examples/hello: the same query as the
// caller's role, through the SelfDB SDK.
import { serve, db } from 'selfdb';

serve((req) => {
  const name = new URL(req.url).searchParams.get('name') ?? 'world';
  const [row] = db.query("select 'Hello, ' || $1::text || '!' as greeting, current_user::text as role", [name]);
  return new Response(JSON.stringify(row), { headers: { 'content-type': 'application/json' } });
});
