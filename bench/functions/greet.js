// The JavaScript twin of components/examples/greet, as a plain fetch-event
// script (no SelfDB SDK), so `wasmtime serve` runs the same component.
addEventListener('fetch', (event) =>
  event.respondWith(new Response('Hello, world!', { headers: { 'content-type': 'text/plain; charset=utf-8' } })),
);
