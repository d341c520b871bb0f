// After `vite build`: writes a gzip twin of every file in dist/ (the host
// serves it to clients that accept gzip), prints the sizes, and fails when
// the gzipped total reaches the budget of 1 MiB.
import { gzipSync, constants } from "node:zlib";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";

const BUDGET = 1024 * 1024;
const dist = new URL("../dist/", import.meta.url).pathname;

function files(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return files(path);
    return name.endsWith(".gz") ? [] : [path];
  });
}

let raw = 0;
let gzipped = 0;
for (const path of files(dist)) {
  const bytes = readFileSync(path);
  const gz = gzipSync(bytes, { level: constants.Z_BEST_COMPRESSION });
  writeFileSync(`${path}.gz`, gz);
  raw += bytes.length;
  gzipped += gz.length;
  console.log(`${relative(dist, path).padEnd(40)} ${String(bytes.length).padStart(9)} B  gzip ${String(gz.length).padStart(8)} B`);
}
console.log(`dashboard: ${raw} B, ${gzipped} B gzipped (budget ${BUDGET} B)`);
if (gzipped >= BUDGET) {
  console.error("dashboard: over the 1 MiB (gzip) budget");
  process.exit(1);
}
