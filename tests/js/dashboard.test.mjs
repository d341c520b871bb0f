// The dashboard in a real browser: Debian's Chromium driven by
// playwright-core (no browser download), against a host the Rust harness
// started (tests/tests/all/dashboard.rs). Each flow asserts on what the
// page shows and saves a screenshot under SCREENSHOT_DIR. Playwright's
// waits all have deadlines (its default timeout).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const url = process.env.SELFDB_URL;
const email = process.env.SELFDB_ADMIN_EMAIL;
const password = process.env.SELFDB_ADMIN_PASSWORD;
const shots = process.env.SCREENSHOT_DIR;
mkdirSync(shots, { recursive: true });

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    // No sandbox as root; nothing reaches out to Google's services.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});
after(async () => {
  await browser?.close();
});

/**
 * A fresh page that records JavaScript errors and console errors. A
 * response the page handles (a 400 for a wrong password, the 401 of the
 * first refresh with no session yet) makes Chromium log "Failed to load
 * resource": that is the network panel's note, not an error of the page.
 */
async function open() {
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (error) => problems.push(`page error: ${error}`));
  page.on("console", (message) => {
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
      problems.push(`console: ${message.text()}`);
    }
  });
  return { context, page, problems };
}

async function signIn(page) {
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByTestId("admin-email").waitFor();
}

test("a wrong password shows an error, not a blank page; the keyboard reaches every field", async () => {
  const { context, page, problems } = await open();
  try {
    await page.goto(`${url}/_/`);
    await page.getByRole("heading", { name: "Sign in to SelfDB" }).waitFor();
    const paint = await page.evaluate(
      () => performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? null,
    );
    console.log(`first contentful paint: ${paint === null ? "n/a" : `${paint.toFixed(0)} ms`}`);
    // The email field has the focus; Tab goes to the password, then the button.
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute("name")), "email");
    await page.keyboard.type(email);
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute("name")), "password");
    await page.keyboard.type("not the password");
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Sign in");
    await page.keyboard.press("Enter");
    const alert = page.getByRole("alert");
    await alert.waitFor();
    assert.match(await alert.textContent(), /invalid email or password/);
    // The form is still there to try again.
    assert.equal(await page.getByLabel("Email").inputValue(), email);
    await page.screenshot({ path: `${shots}/sign-in-refused.png` });
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

test("an admin signs in, stays signed in across a reload, adds an admin and signs out", async () => {
  const { context, page, problems } = await open();
  try {
    await page.goto(`${url}/_/`);
    await signIn(page);
    assert.equal(await page.getByTestId("admin-email").textContent(), email);
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    await page.getByTestId("status").waitFor();
    assert.equal(await page.getByTestId("status").textContent(), "ok");
    assert.match(await page.getByTestId("version").textContent(), /^\d+\.\d+\.\d+/);
    // The anon key is shown; the service key only once asked for.
    await page.getByTestId("anon-key").waitFor();
    assert.equal(await page.getByTestId("anon-key").textContent(), process.env.SELFDB_ANON_KEY);
    assert.ok(!(await page.content()).includes(process.env.SELFDB_SERVICE_KEY));
    await page.getByRole("button", { name: "Reveal" }).click();
    await page.getByTestId("secrets").waitFor();
    assert.ok((await page.getByTestId("secrets").textContent()).includes(process.env.SELFDB_SERVICE_KEY));
    assert.match(await page.getByTestId("count-admins").textContent(), /^1 Admins$/);
    await page.getByRole("img", { name: "Requests per minute" }).waitFor();
    assert.match(await page.getByTestId("requests-hour").textContent(), /^\d+ requests$/);
    await page.screenshot({ path: `${shots}/overview.png`, fullPage: true });

    // The refresh cookie resumes the session after a reload.
    await page.reload();
    await page.getByTestId("admin-email").waitFor();

    // To the admins page by keyboard: focus the navigation's link, Enter.
    await page.getByRole("link", { name: "Admins" }).focus();
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: "Admins" }).waitFor();
    await page.getByRole("cell", { name: `${email} (you)` }).waitFor();
    const form = page.locator("form", { has: page.getByRole("heading", { name: "Add an admin" }) });
    await form.getByLabel("Email").fill("second-admin@example.com");
    await form.getByLabel("Password").fill("a second password");
    await form.getByRole("button", { name: "Add" }).click();
    await page.getByRole("status").waitFor();
    await page.getByRole("cell", { name: "second-admin@example.com" }).waitFor();
    await page.screenshot({ path: `${shots}/admins.png` });

    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in to SelfDB" }).waitFor();
    // Signed out for good: a reload does not resume.
    await page.reload();
    await page.getByRole("heading", { name: "Sign in to SelfDB" }).waitFor();
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

test("the logs page filters the request log and shows new requests without a reload", async () => {
  const { context, page, problems } = await open();
  try {
    await page.goto(`${url}/_/#/logs`);
    await signIn(page);
    await page.getByRole("heading", { name: "Logs" }).waitFor();
    const table = page.getByTestId("log-table");
    await table.waitFor();
    // The table once every row's `column` (1-based) passes `check` (the
    // rows shown before a filter is applied are replaced a moment later).
    // (The page's CSP allows no eval: the checks are named, not passed.)
    const rowsWhere = (column, check) =>
      page.waitForFunction(
        ([column, check]) => {
          const cells = [...document.querySelectorAll(`[data-testid="log-table"] tbody tr td:nth-child(${column})`)];
          const pass = (text) => (check === "post" ? text === "POST" : Number(text) >= 400);
          return cells.length > 0 && cells.every((cell) => pass(cell.textContent));
        },
        [column, check],
      );
    // Only POSTs: the sign-in's is there, and nothing else.
    await page.getByLabel("Method").selectOption("POST");
    await rowsWhere(2, "post");
    await table.getByRole("cell", { name: "/api/v1/admin", exact: true }).first().waitFor();
    // Errors only: the refresh tried before signing in was refused (401).
    await page.getByLabel("Errors only").check();
    await rowsWhere(5, "failed");
    await table.getByRole("cell", { name: "401", exact: true }).first().waitFor();
    // A new failing request appears by itself (the 5 s refresh).
    await page.getByLabel("Method").selectOption("");
    await page.evaluate(() => fetch("/rest/v1/", { headers: { apikey: "not a key" } }));
    await table.getByRole("cell", { name: "/rest/v1/", exact: true }).first().waitFor();
    await page.screenshot({ path: `${shots}/logs.png`, fullPage: true });
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

test("the SQL editor runs a script, shows the grid, marks an error and saves a snippet", async () => {
  const { context, page, problems } = await open();
  try {
    await page.goto(`${url}/_/#/sql`);
    await signIn(page);
    await page.getByRole("heading", { name: "SQL editor" }).waitFor();
    const editor = page.getByRole("textbox", { name: "SQL" });
    await editor.click();
    await page.keyboard.press("Control+A");
    await page.keyboard.insertText(
      "create table pets (id serial primary key, name text not null);\n" +
        "insert into pets (name) values ('Rex'), ('Tom');\n" +
        "select id, name from pets order by id",
    );
    await page.getByRole("button", { name: "Run" }).click();
    const grid = page.getByRole("region", { name: "Results" });
    await grid.getByRole("cell", { name: "Tom", exact: true }).waitFor();
    assert.deepEqual(await grid.locator("tbody td:nth-child(2)").allTextContents(), ["Rex", "Tom"]);
    assert.match(await page.getByTestId("sql-results").textContent(), /INSERT · 2 affected/);
    // The side panel lists the new table once the script has run.
    await page.getByTestId("schema-tables").getByText("pets", { exact: true }).waitFor();
    await page.screenshot({ path: `${shots}/sql.png`, fullPage: true });

    // An error names the statement and the place, which the editor marks.
    await editor.click();
    await page.keyboard.press("Control+A");
    await page.keyboard.insertText("select 1;\nselect nope from pets");
    await page.keyboard.press("Control+Enter");
    const error = page.getByTestId("sql-error");
    await error.waitFor();
    const text = await error.textContent();
    assert.match(text, /column "nope" does not exist/);
    assert.match(text, /statement 2, line 2, column 8, SQLSTATE 42703/);
    assert.equal(await page.locator(".cm-error-mark").textContent(), "nope");
    await page.screenshot({ path: `${shots}/sql-error.png`, fullPage: true });

    // Saved snippets are listed and open again.
    await page.getByLabel("Snippet name").fill("Broken pets");
    await page.getByRole("button", { name: "Save snippet" }).click();
    await page.getByRole("button", { name: "Broken pets", exact: true }).waitFor();
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

/** `POST /api/v1/sql` with the service key, from the test itself (setup). */
async function runSql(query) {
  const response = await fetch(`${url}/api/v1/sql`, {
    method: "POST",
    headers: {
      apikey: process.env.SELFDB_SERVICE_KEY,
      authorization: `Bearer ${process.env.SELFDB_SERVICE_KEY}`,
      "content-type": "application/json",
    },
    body: JSON.stringify({ query }),
  });
  assert.equal(response.status, 200, await response.text());
}

test("the table editor creates a table, inserts, edits and deletes rows, adds a column and a policy", async () => {
  const { context, page, problems } = await open();
  page.on("dialog", (dialog) => void dialog.accept(dialog.type() === "prompt" ? "pages" : undefined));
  try {
    await page.goto(`${url}/_/#/tables`);
    await signIn(page);
    await page.getByRole("button", { name: "New table" }).click();
    const form = page.getByRole("form", { name: "New table" });
    await form.getByLabel("Name", { exact: true }).fill("books");
    await form.getByRole("button", { name: "Add a column" }).click();
    await form.getByLabel("Column 3 name").fill("title");
    await form.getByLabel("Column 3 nullable").uncheck();
    await form.getByRole("button", { name: "Create table" }).click();
    await page.getByRole("heading", { name: "public.books" }).waitFor();
    await page.getByTestId("table-list").getByRole("link", { name: "books" }).waitFor();

    // Rows: insert, edit, delete.
    await page.getByTestId("row-count").filter({ hasText: /^0 rows$/ }).waitFor();
    await page.getByRole("button", { name: "Insert row" }).click();
    const insert = page.getByRole("form", { name: "Insert row" });
    await insert.getByRole("textbox", { name: /^title/ }).fill("Dune");
    await insert.getByRole("button", { name: "Insert" }).click();
    const rows = page.getByRole("region", { name: "Rows" });
    await rows.getByRole("cell", { name: "Dune", exact: true }).waitFor();
    await rows.getByRole("button", { name: "Edit" }).click();
    const edit = page.getByRole("form", { name: "Edit row" });
    await edit.getByRole("textbox", { name: /^title/ }).fill("Dune Messiah");
    await edit.getByRole("button", { name: "Save" }).click();
    await rows.getByRole("cell", { name: "Dune Messiah", exact: true }).waitFor();
    await page.screenshot({ path: `${shots}/table-rows.png`, fullPage: true });
    await rows.getByRole("button", { name: "Delete" }).click();
    await page.getByTestId("row-count").filter({ hasText: /^0 rows$/ }).waitFor();

    // Structure: a new column.
    await page.getByRole("link", { name: "Structure" }).click();
    const add = page.getByRole("form", { name: "Add a column" });
    await add.getByLabel("Name").fill("pages");
    await add.getByLabel("Type").fill("integer");
    await add.getByRole("button", { name: "Add column" }).click();
    await page.getByRole("status").filter({ hasText: 'add column "pages" integer' }).waitFor();
    await page.getByRole("cell", { name: "pages", exact: true }).waitFor();

    // Policies: RLS is on (the form's default); a policy for reading.
    await page.getByRole("link", { name: "Policies" }).click();
    await page.getByTestId("rls-state").filter({ hasText: "Row level security is on" }).waitFor();
    const policy = page.getByRole("form", { name: "New policy" });
    await policy.getByLabel("Name").fill("anyone reads");
    await policy.getByLabel("Roles (comma-separated)").fill("anon, authenticated");
    await policy.getByLabel("Using (which rows it reads)").fill("true");
    await policy.getByRole("button", { name: "Create policy" }).click();
    await page.getByRole("cell", { name: "anyone reads", exact: true }).waitFor();
    await page.screenshot({ path: `${shots}/table-policies.png`, fullPage: true });
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

test("a table of 10,000 rows is read 50 rows at a time", async () => {
  await runSql(
    "create table big (id int primary key, label text);\n" +
      "insert into big select g, 'row ' || g from generate_series(1, 10000) g",
  );
  const { context, page, problems } = await open();
  const reads = [];
  page.on("request", (request) => {
    if (request.url().includes("/rest/v1/big")) reads.push(new URL(request.url()));
  });
  try {
    await page.goto(`${url}/_/#/tables/public/big/rows`);
    await signIn(page);
    const count = page.getByTestId("row-count");
    await count.filter({ hasText: "10,000 rows, showing 1–50" }).waitFor();
    const rows = page.getByRole("region", { name: "Rows" });
    assert.equal(await rows.locator("tbody tr").count(), 50);
    assert.ok(reads.length > 0 && reads.every((r) => r.searchParams.get("limit") === "50"), reads.join(" "));
    await page.getByRole("button", { name: "Next page" }).click();
    await count.filter({ hasText: "showing 51–100" }).waitFor();
    assert.equal(await rows.locator("tbody tr td").first().textContent(), "51");
    // Sorting asks the server (by the primary key, ascending, at first):
    // the last id comes first.
    await rows.getByRole("button", { name: "Sort by id" }).click();
    await rows.locator("tbody tr td").first().filter({ hasText: /^10000$/ }).waitFor();
    assert.equal(await rows.locator("tbody tr").count(), 50);
    await page.screenshot({ path: `${shots}/table-10k.png` });
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

/** GoTrue's password sign-in, as an app would call it. */
async function userSignIn(userEmail, userPassword) {
  return fetch(`${url}/auth/v1/token?grant_type=password`, {
    method: "POST",
    headers: { apikey: process.env.SELFDB_ANON_KEY, "content-type": "application/json" },
    body: JSON.stringify({ email: userEmail, password: userPassword }),
  });
}

test("the auth page adds, finds and bans a user, whose sign-in then fails, and ends their sessions", async () => {
  const { context, page, problems } = await open();
  page.on("dialog", (dialog) => void dialog.accept());
  try {
    await page.goto(`${url}/_/#/auth`);
    await signIn(page);
    await page.getByRole("heading", { name: "Auth" }).waitFor();
    const add = page.getByRole("form", { name: "Add a user" });
    await add.getByLabel("Email").fill("carol@example.com");
    await add.getByLabel("Password").fill("carol's password");
    await add.getByRole("button", { name: "Add user" }).click();
    await page.getByRole("status").filter({ hasText: "carol@example.com was added" }).waitFor();
    assert.equal((await userSignIn("carol@example.com", "carol's password")).status, 200);

    await page.getByLabel("Search users").fill("CAROL");
    await page.getByRole("button", { name: "Search" }).click();
    await page.getByTestId("user-count").filter({ hasText: /^1 user$/ }).waitFor();
    const row = page.getByTestId("users").getByRole("row", { name: /carol@example\.com/ });
    // Her session from the sign-in above, then signed out everywhere.
    await row.getByRole("button", { name: "Sessions" }).click();
    const sessions = page.getByRole("table", { name: "Sessions of carol@example.com" });
    await sessions.getByRole("button", { name: "End" }).waitFor();
    await page.getByRole("button", { name: "Sign out everywhere" }).click();
    await page.getByText("No sessions: carol@example.com is signed out everywhere.").waitFor();

    await row.getByRole("button", { name: "Ban" }).click();
    await row.getByRole("cell", { name: "banned", exact: true }).waitFor();
    await page.screenshot({ path: `${shots}/auth.png`, fullPage: true });
    const refused = await userSignIn("carol@example.com", "carol's password");
    assert.equal(refused.status, 400);
    assert.match(JSON.stringify(await refused.json()), /banned/i);
    await row.getByRole("button", { name: "Unban" }).click();
    await row.getByRole("cell", { name: "active", exact: true }).waitFor();
    assert.equal((await userSignIn("carol@example.com", "carol's password")).status, 200);
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

test("the storage page makes a bucket, uploads with progress and by drop, downloads, signs, moves and deletes", async () => {
  const { context, page, problems } = await open();
  page.on("dialog", (dialog) => void dialog.accept(dialog.type() === "prompt" ? "archive/dropped.txt" : undefined));
  const bytes = Buffer.alloc(300 * 1024, 0);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) % 251;
  try {
    await page.goto(`${url}/_/#/storage`);
    await signIn(page);
    const bucketForm = page.getByRole("form", { name: "New bucket" });
    await bucketForm.getByLabel("Name").fill("docs");
    await bucketForm.getByRole("button", { name: "Create bucket" }).click();
    await page.getByTestId("buckets").getByRole("link", { name: "docs" }).waitFor();
    await page.getByText("Nothing here yet.").waitFor();

    await page.getByLabel("Upload files (or drop them here)").setInputFiles({
      name: "pattern.bin",
      mimeType: "application/octet-stream",
      buffer: bytes,
    });
    await page.getByRole("list", { name: "Uploads" }).getByText("uploaded").waitFor();
    assert.equal(await page.getByRole("progressbar", { name: "Upload of pattern.bin" }).evaluate((bar) => bar.value), 1);
    const objects = page.getByTestId("objects");
    await objects.getByRole("cell", { name: "pattern.bin", exact: true }).waitFor();

    // A file dropped on the page.
    const dropped = await page.evaluateHandle(() => {
      const transfer = new DataTransfer();
      transfer.items.add(new File(["dropped here"], "dropped.txt", { type: "text/plain" }));
      return transfer;
    });
    await page.getByTestId("drop-zone").dispatchEvent("drop", { dataTransfer: dropped });
    await objects.getByRole("cell", { name: "dropped.txt", exact: true }).waitFor();

    // Download: the same bytes.
    const row = objects.getByRole("row", { name: /pattern\.bin/ });
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      row.getByRole("button", { name: "Download" }).click(),
    ]);
    const { readFile } = await import("node:fs/promises");
    assert.ok(bytes.equals(await readFile(await download.path())), "downloaded bytes differ");

    // A signed link works without credentials.
    await row.getByRole("button", { name: "Signed link" }).click();
    const link = await page.getByLabel("Signed link").inputValue();
    const signed = await fetch(link);
    assert.equal(signed.status, 200);
    assert.ok(bytes.equals(Buffer.from(await signed.arrayBuffer())), "signed link bytes differ");

    // Move into a folder, and look inside.
    await objects.getByRole("row", { name: /dropped\.txt/ }).getByRole("button", { name: "Move" }).click();
    await page.getByRole("status").filter({ hasText: "Moved to archive/dropped.txt." }).waitFor();
    await objects.getByRole("link", { name: "archive/" }).click();
    await page.getByTestId("objects").getByRole("cell", { name: "dropped.txt", exact: true }).waitFor();
    await page.screenshot({ path: `${shots}/storage.png`, fullPage: true });

    // Limits: a file over the size limit is refused, and says why.
    await page.getByRole("heading").getByRole("link", { name: "docs" }).click();
    const limits = page.getByRole("form", { name: "Bucket limits" });
    await limits.getByLabel("Size limit per file (MB)").fill("0.1");
    await limits.getByLabel("Allowed types").fill("application/octet-stream, text/*");
    await limits.getByRole("button", { name: "Save limits" }).click();
    await page.getByTestId("bucket-limits").filter({ hasText: "Files up to 102.4 KB; types application/octet-stream, text/*." }).waitFor();
    await page.getByLabel("Upload files (or drop them here)").setInputFiles({
      name: "too-big.bin",
      mimeType: "application/octet-stream",
      buffer: bytes,
    });
    await page.getByRole("list", { name: "Uploads" }).locator(".error").waitFor();
    await limits.getByLabel("Size limit per file (MB)").fill("");
    await limits.getByLabel("Allowed types").fill("");
    await limits.getByRole("button", { name: "Save limits" }).click();
    await page.getByTestId("bucket-limits").filter({ hasText: "No size limit; any type." }).waitFor();

    // Delete.
    await page.getByTestId("objects").getByRole("row", { name: /pattern\.bin/ }).getByRole("button", { name: "Delete" }).click();
    await page.getByTestId("objects").getByRole("cell", { name: "pattern.bin", exact: true }).waitFor({ state: "detached" });
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

test("a function deployed from the editor answers, logs, and lists its deployer; a type error is marked", async () => {
  const { context, page, problems } = await open();
  try {
    await page.goto(`${url}/_/#/functions`);
    await signIn(page);
    await page.getByRole("heading", { name: "New function" }).waitFor();
    // (Not "hello": the host serves a fixture of that name.)
    await page.getByLabel("Name").fill("greeter");
    await page.getByRole("textbox", { name: "Function code" }).waitFor();
    await page.getByRole("button", { name: "Deploy", exact: true }).click();
    const message = page.getByTestId("deploy-message");
    // A first TypeScript build checks types and bundles: give it time.
    await message.filter({ hasText: "Version 1 deployed and serving." }).waitFor({ timeout: 180_000 });
    await page.getByTestId("function-list").getByRole("link", { name: "greeter" }).waitFor();

    await page.getByRole("navigation", { name: "Function views" }).getByRole("link", { name: "Invoke" }).click();
    await page.getByRole("button", { name: "Send" }).click();
    const answer = page.getByTestId("invoke-answer");
    await answer.waitFor();
    assert.match(await answer.textContent(), /Status 200/);
    assert.match(await answer.textContent(), /Hello SelfDB!/);

    // The invocation shows up in the live log.
    await page.getByRole("navigation", { name: "Function views" }).getByRole("link", { name: "Logs" }).click();
    await page.getByTestId("function-logs").getByRole("cell", { name: "200", exact: true }).first().waitFor();
    await page.screenshot({ path: `${shots}/function-logs.png`, fullPage: true });

    await page.getByRole("navigation", { name: "Function views" }).getByRole("link", { name: "Versions" }).click();
    await page.getByTestId("versions").getByRole("cell", { name: email, exact: true }).waitFor();

    // A type error: refused with file, line and column, and marked.
    await page.getByRole("navigation", { name: "Function views" }).getByRole("link", { name: "Code" }).click();
    const editor = page.getByRole("textbox", { name: "Function code" });
    await editor.getByText("serve(async").waitFor();
    await editor.click();
    await page.keyboard.press("Control+A");
    await page.keyboard.insertText('import { serve } from "selfdb";\nconst n: number = "text";\nserve(() => new Response(String(n)));\n');
    await page.getByRole("button", { name: "Deploy", exact: true }).click();
    const refused = page.getByRole("alert").filter({ hasText: "index.ts:2:" });
    await refused.waitFor({ timeout: 180_000 });
    await page.locator(".cm-error-mark").waitFor();
    // The earlier success is no longer announced above a failed deploy.
    await page.getByTestId("deploy-message").waitFor({ state: "detached" });
    await page.screenshot({ path: `${shots}/function-error.png`, fullPage: true });
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

test("a database added by URL gets a key shown once, answers with it, and charts its requests", async () => {
  const { context, page, problems } = await open();
  page.on("dialog", (dialog) => void dialog.accept());
  try {
    await page.goto(`${url}/_/#/projects`);
    await signIn(page);
    const form = page.getByRole("form", { name: "Add a database" });
    await form.getByLabel("Name").fill("shop");
    await form.getByLabel("Database URL").fill(process.env.PROJECT_DATABASE_URL);
    await form.getByRole("button", { name: "Add database" }).click();
    const shown = page.getByTestId("project-key");
    await shown.waitFor();
    const apiKey = (await shown.locator("code").textContent()).trim();
    const projectId = Number(new URL(page.url()).hash.split("/")[2]);
    assert.ok(apiKey.length > 20 && projectId > 0, `${apiKey} ${projectId}`);

    // Requests with the key: reads, and one that fails.
    const query = (body) =>
      fetch(`${url}/query`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ projectId, apiKey, ...body }),
      });
    for (let i = 0; i < 5; i++) assert.equal((await query({ operation: "read", tableName: "items" })).status, 200);
    assert.equal((await query({ operation: "read", tableName: "nope" })).status, 404);

    // The analytics: the requests are counted (the log is written within
    // moments, so the page is asked again until they are), and charted.
    const totals = page.getByTestId("project-totals");
    for (const deadline = Date.now() + 60_000; ; ) {
      await page.getByRole("navigation", { name: "Project views" }).getByRole("link", { name: "Logs" }).click();
      await page.getByRole("form", { name: "Filter project logs" }).waitFor();
      await page.getByRole("navigation", { name: "Project views" }).getByRole("link", { name: "Analytics" }).click();
      await totals.waitFor();
      if (/^6 requests/.test(await totals.locator("li").first().textContent())) break;
      assert.ok(Date.now() < deadline, `the analytics did not count 6 requests: ${await totals.textContent()}`);
    }
    await page.getByRole("img", { name: "Requests per minute" }).waitFor();
    await page.getByTestId("project-endpoints").getByRole("cell", { name: "items", exact: true }).waitFor();
    await page.screenshot({ path: `${shots}/project-analytics.png`, fullPage: true });

    // The logs, filtered to the failures.
    await page.getByRole("navigation", { name: "Project views" }).getByRole("link", { name: "Logs" }).click();
    await page.getByLabel("Errors only").check();
    // Once the filter applies: one row, the 404.
    await page.waitForFunction(() => {
      const rows = document.querySelectorAll('[data-testid="project-logs"] tbody tr');
      return rows.length === 1 && rows[0].querySelector("td:nth-child(6)")?.textContent === "404";
    });

    // A new key replaces the old one at once.
    await page.getByRole("navigation", { name: "Project views" }).getByRole("link", { name: "Key and settings" }).click();
    await page.getByRole("button", { name: "Rotate key" }).click();
    await page.getByTestId("project-key").filter({ hasNotText: apiKey }).waitFor();
    assert.equal((await query({ operation: "read", tableName: "items" })).status, 401);
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

test("the realtime inspector shows a table's changes as they happen", async () => {
  await runSql(
    "create table rt_notes (id serial primary key, note text);\n" +
      "alter publication supabase_realtime add table rt_notes",
  );
  const { context, page, problems } = await open();
  try {
    await page.goto(`${url}/_/#/realtime`);
    await signIn(page);
    await page.getByLabel("Table", { exact: true }).selectOption("rt_notes");
    await page.getByRole("button", { name: "Listen" }).click();
    await page.getByTestId("realtime-status").filter({ hasText: "Listening" }).waitFor();
    // The change capture starts with the first subscriber: insert until a
    // change arrives (each insert is a new row; any of them will do).
    const messages = page.getByTestId("realtime-messages");
    for (let i = 0; ; i++) {
      await runSql(`insert into rt_notes (note) values ('hello ${i}')`);
      try {
        await messages.getByRole("cell", { name: "INSERT", exact: true }).first().waitFor({ timeout: 2000 });
        break;
      } catch (err) {
        if (i >= 30) throw err;
      }
    }
    assert.match(await messages.textContent(), /public\.rt_notes.*"note":"hello \d+"/);
    await page.screenshot({ path: `${shots}/realtime.png`, fullPage: true });
    await page.getByRole("button", { name: "Stop" }).click();
    await page.getByTestId("realtime-status").filter({ hasText: "Not listening." }).waitFor();
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});
