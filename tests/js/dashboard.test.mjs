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
