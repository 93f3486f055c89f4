// Drives Debian's chromium through the sample page (examples/opendeck-web) for tests/test_browser.py.
// Usage: node drive.mjs <allowed page URL> <refused page URL> <collector traces URL>
// Prints one JSON object: what the browser saw of its exports. Every wait is on a condition.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [allowedUrl, refusedUrl, tracesUrl] = process.argv.slice(2);
const TIMEOUT = 20_000;
// Without the background-networking flags chromium waits on services it cannot reach here.
const FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

async function openPage(context, url) {
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  const seen = { exports: [], failed: [], errors: [] };
  page.on('response', (response) => {
    const request = response.request();
    if (response.url() === tracesUrl && request.method() === 'POST') {
      seen.exports.push({ status: response.status(), bytes: request.postDataBuffer()?.length ?? 0 });
    }
  });
  page.on('requestfailed', (request) => {
    if (request.url() === tracesUrl) seen.failed.push(request.failure()?.errorText ?? 'failed');
  });
  page.on('pageerror', (error) => seen.errors.push(error.message));
  await page.goto(url);
  await page.waitForFunction(() => document.getElementById('status').textContent === 'ready');
  return { page, seen };
}

async function clickAndWait(page, button, status) {
  await page.click(button);
  await page.waitForFunction((s) => document.getElementById('status').textContent.startsWith(s), status);
  return page.textContent('#status');
}

const profile = mkdtempSync(join(tmpdir(), 'chromium-profile-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium', headless: true, args: FLAGS, timeout: TIMEOUT,
});
try {
  // A page on an origin the collector does not list: its export must die at the preflight.
  const refused = await openPage(context, refusedUrl);
  await clickAndWait(refused.page, '#break', 'breaking');
  const failedExport = refused.page.waitForEvent('requestfailed', { predicate: (r) => r.url() === tracesUrl });
  refused.page.evaluate(() => window.opendeck.flush()).catch(() => {});
  await failedExport;
  await refused.page.close();

  // A page on a listed origin: a click that fetches, one that sends an XHR, one that throws.
  const allowed = await openPage(context, allowedUrl);
  const steps = {
    fetch: await clickAndWait(allowed.page, '#load-decks', 'decks loaded'),
    xhr: await clickAndWait(allowed.page, '#create-deck', 'deck created'),
    error: await clickAndWait(allowed.page, '#break', 'breaking'),
  };
  await allowed.page.evaluate(() => window.opendeck.flush());
  console.log(JSON.stringify({ refused: refused.seen, allowed: { ...allowed.seen, steps } }));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
