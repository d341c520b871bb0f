// What the SelfDB host runs to build TypeScript/JavaScript functions.
//
//   node build.mjs bundle <entry> <out.js>         check and bundle one entry file
//   node build.mjs componentize <bundle.js> <out>  the function's own component
//   node build.mjs loader <out.wasm>               the shared engine component
//   node build.mjs plain <script.js> <out.wasm>    a fetch-event script alone
//                                                  (no platform imports: for make bench)
//
// Each prints one JSON line on stdout: {"ok":true,...} or
// {"ok":false,"errors":[{"file","line","column","message"}]}; the host
// shows the errors to whoever deployed. Exit status 0 either way, unless the
// tool itself broke (then stderr says why).
//
// How a function runs: esbuild bundles the entry and the `selfdb` SDK into
// one script (IIFE, so it can be evaluated, not imported). A small prelude
// imports the platform's WIT interfaces and hands them to the SDK through
// `globalThis.__selfdb`. The shared engine (`loader`) is that prelude plus
// an evaluator of whichever script the host gives it per request, so a new
// version answers at once; `componentize` pre-initializes prelude + script
// into the function's own component (ComponentizeJS runs Wizer over
// StarlingMonkey), which the host swaps in once built.

import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');
const sdk = process.env.SELFDB_JS_SDK ?? join(repo, 'sdk', 'js');
const platformWit = process.env.SELFDB_WIT ?? join(repo, 'wit');

// The WIT directory ComponentizeJS reads: wit/world.wit (the JS worlds),
// the WASI 0.2.10 packages, and the platform's interfaces from the
// repository's wit/ (without its worlds, which name wasi:http 0.2.12).
function assembleWit(dir) {
  const wit = join(dir, 'wit');
  cpSync(join(here, 'wit'), wit, { recursive: true });
  const platform = join(wit, 'deps', 'selfdb-platform');
  mkdirSync(platform, { recursive: true });
  for (const file of readdirSync(platformWit)) {
    if (file.endsWith('.wit') && file !== 'worlds.wit') {
      cpSync(join(platformWit, file), join(platform, file));
    }
  }
  return wit;
}

// The platform's interfaces, imported once and handed to the SDK, and the
// function's two entry points: the fetch event (wasi:http, which
// StarlingMonkey serves itself as long as the module exports no
// `incomingHandler`) and the `listener` export (ComponentizeJS binds an
// exported interface to the module export of its camelCase name). Both
// first run `runScript`: the shared engine (LOADER) sets it to evaluate the
// script the host gives it; a function's own component evaluated its
// script when it was built, so there it does nothing.
const PRELUDE = `
import * as db from 'selfdb:platform/db@0.1.0';
import * as config from 'selfdb:platform/config@0.1.0';
import * as log from 'selfdb:platform/log@0.1.0';
import * as context from 'selfdb:platform/context@0.1.0';
import * as events from 'selfdb:platform/events@0.1.0';
let handler = null;
let eventHandler = null;
let runScript = () => {};
globalThis.__selfdb = {
  db, config, log, context, events,
  serve(h) {
    if (handler) throw new Error('serve() was called twice');
    handler = h;
  },
  onEvent(h) {
    if (eventHandler) throw new Error('onEvent() was called twice');
    eventHandler = h;
  },
};
addEventListener('fetch', (event) => {
  event.respondWith((async () => {
    try {
      runScript();
      if (!handler) {
        return new Response('the function did not call serve(handler)', { status: 500 });
      }
      return await handler(event.request);
    } catch (err) {
      console.error(err && err.stack ? err.stack : String(err));
      return new Response('the function threw: ' + (err && err.message ? err.message : String(err)), { status: 500 });
    }
  })());
});
// handle: func(event) -> result<_, string>. ComponentizeJS awaits the
// returned promise and turns a thrown value into the err: its own payload
// property if it has one (else, depending on the version, an Error's
// message or a trap). A plain { payload: string } reads the same in
// every version, so the host always gets the message, never a trap.
export const listener = {
  async handle(event) {
    let message;
    try {
      runScript();
      if (!eventHandler) {
        message = 'the function did not call onEvent(handler)';
      } else {
        await eventHandler({
          id: event.id,
          kind: event.kind,
          name: event.name,
          attempt: event.attempt,
          payload: JSON.parse(event.payload),
        });
        return;
      }
    } catch (err) {
      console.error(err && err.stack ? err.stack : String(err));
      message = err && err.message ? err.message : String(err);
    }
    throw { payload: message };
  },
};
`;

const LOADER = `${PRELUDE}
import { source } from 'selfdb:platform/script@0.1.0';
runScript = () => (0, eval)(source());
`;

function emit(result) {
  process.stdout.write(JSON.stringify(result) + '\n');
}

// `file(line,col): error TS2322: message` from tsc --pretty false.
function tscErrors(output, entryDir) {
  const errors = [];
  for (const line of output.split('\n')) {
    const m = /^(.*)\((\d+),(\d+)\): error (TS\d+): (.*)$/.exec(line.trim());
    if (m) {
      errors.push({
        file: resolve(entryDir, m[1]),
        line: Number(m[2]),
        column: Number(m[3]),
        message: `${m[4]}: ${m[5]}`,
      });
    } else if (line.trim() && errors.length) {
      errors[errors.length - 1].message += '\n' + line.trim();
    }
  }
  return errors;
}

function typecheck(entry) {
  const dir = mkdtempSync(join(tmpdir(), 'selfdb-tsc-'));
  try {
    const tsconfig = {
      compilerOptions: {
        strict: true,
        noEmit: true,
        target: 'ES2022',
        module: 'ESNext',
        moduleResolution: 'bundler',
        lib: ['ES2022', 'DOM', 'DOM.Iterable'],
        types: [],
        skipLibCheck: true,
        allowImportingTsExtensions: true,
        paths: { selfdb: [join(sdk, 'index.d.ts')] },
      },
      files: [entry],
    };
    const config = join(dir, 'tsconfig.json');
    writeFileSync(config, JSON.stringify(tsconfig));
    const tsc = join(here, 'node_modules', '.bin', 'tsc');
    const run = spawnSync(tsc, ['-p', config, '--pretty', 'false'], {
      encoding: 'utf8',
      cwd: dirname(entry),
    });
    if (run.error) throw run.error;
    if (run.status === 0) return [];
    const errors = tscErrors(run.stdout + run.stderr, dirname(entry));
    return errors.length
      ? errors
      : [{ file: entry, line: 1, column: 1, message: (run.stdout + run.stderr).trim() }];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function bundle(entry, out) {
  entry = resolve(entry);
  if (entry.endsWith('.ts') || entry.endsWith('.mts')) {
    const errors = typecheck(entry);
    if (errors.length) return emit({ ok: false, errors });
  }
  try {
    const result = await build({
      entryPoints: [entry],
      bundle: true,
      format: 'iife',
      platform: 'neutral',
      target: 'es2022',
      write: false,
      logLevel: 'silent',
      alias: { selfdb: join(sdk, 'index.js') },
      mainFields: ['module', 'main'],
      sourcemap: false,
      legalComments: 'none',
    });
    const code = result.outputFiles[0].text;
    writeFileSync(out, code);
    emit({ ok: true, bytes: Buffer.byteLength(code) });
  } catch (err) {
    const errors = (err.errors ?? []).map((e) => ({
      file: e.location?.file ? resolve(e.location.file) : entry,
      line: e.location?.line ?? 1,
      column: (e.location?.column ?? 0) + 1,
      message: e.text,
    }));
    if (!errors.length) throw err;
    emit({ ok: false, errors });
  }
}

async function toComponent(source, worldName, out) {
  const dir = mkdtempSync(join(tmpdir(), 'selfdb-cjs-'));
  try {
    const sourcePath = join(dir, 'function.js');
    writeFileSync(sourcePath, source);
    // Loaded only here: importing ComponentizeJS costs more than a whole
    // bundle does.
    const { componentize } = await import('@bytecodealliance/componentize-js');
    const { component } = await componentize({
      sourcePath,
      witPath: assembleWit(dir),
      worldName,
    });
    writeFileSync(out, component);
    emit({ ok: true, bytes: component.length });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const [command, ...args] = process.argv.slice(2);
switch (command) {
  case 'bundle':
    await bundle(args[0], args[1]);
    break;
  case 'componentize': {
    const script = readFileSync(args[0], 'utf8');
    const source = `${PRELUDE}
${script}
`;
    await toComponent(source, 'js-function', args[1]);
    break;
  }
  case 'loader':
    await toComponent(LOADER, 'js-loader', args[0]);
    break;
  case 'plain':
    await toComponent(readFileSync(args[0], 'utf8'), 'js-plain', args[1]);
    break;
  default:
    process.stderr.write(`usage: node ${basename(process.argv[1])} bundle|componentize|loader|plain ...\n`);
    process.exit(2);
}
