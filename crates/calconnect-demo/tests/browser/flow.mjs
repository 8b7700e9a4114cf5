// Drives the calconnect demo's real pages in headless Chromium (Debian's package):
// sign in to the example app, connect Cal.com (sandbox sign-in + consent), see the weekly grid
// (also on a 390 px phone screen), ask to disconnect and keep it, an outage, revoke through the
// demo controls and see the reconnect offer, then the deny path, the operator dashboard, and
// the broker's and the sandbox's own pages. Every page is checked with axe-core: a critical or
// serious violation fails the run.
// Usage: node flow.mjs <app-url> <artifacts-dir>; the admin password in $CALCONNECT_DEMO_ADMIN,
// the broker's and the sandbox's addresses in $CALCONNECT_DEMO_BROKER and $CALCONNECT_DEMO_SANDBOX.
// Prints "browser flow ok" on success.
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [appUrl, artifacts] = process.argv.slice(2);
const adminPassword = process.env.CALCONNECT_DEMO_ADMIN;
const brokerUrl = (process.env.CALCONNECT_DEMO_BROKER || '').replace(/\/$/, '');
const sandboxUrl = (process.env.CALCONNECT_DEMO_SANDBOX || '').replace(/\/$/, '');
if (!appUrl || !artifacts || !brokerUrl || !sandboxUrl) {
  console.error('usage: CALCONNECT_DEMO_BROKER=… CALCONNECT_DEMO_SANDBOX=… node flow.mjs <app-url> <artifacts-dir>');
  process.exit(2);
}
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
mkdirSync(artifacts, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), 'calconnect-chromium-'));
const wide = { width: 1100, height: 900 };
const phone = { width: 390, height: 844 };
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
  viewport: wide,
  ...(adminPassword ? { httpCredentials: { username: 'admin', password: adminPassword } } : {}),
});
context.setDefaultTimeout(15000);
const page = context.pages()[0] ?? await context.newPage();
const shot = (name) => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
const step = (what) => console.log(`step: ${what}`);
const check = (ok, what) => { if (!ok) throw new Error(what); };

// axe-core on the page as it is now; critical and serious violations are collected and fail
// the run at the end (so one run lists them all).
const violations = [];
let audited = 0;
async function audit(name) {
  // Evaluated through the DevTools protocol, so the pages' CSP (no external scripts) stays as is.
  await page.evaluate(axeSource);
  const result = await page.evaluate(() => globalThis.axe.run(document, { resultTypes: ['violations'] }));
  const bad = result.violations.filter((v) => v.impact === 'critical' || v.impact === 'serious');
  for (const v of bad) {
    const where = v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ');
    violations.push(`${name} (${page.url()}): ${v.id} [${v.impact}] ${v.help}: ${where}`);
  }
  audited += 1;
  console.log(`axe: ${name}: ${bad.length} critical or serious (${result.violations.length} in all)`);
}

let failed = false;
try {
  step('open the app; the name field validates in Chromium');
  await page.goto(appUrl);
  await shot('01-app-sign-in');
  await audit('app sign-in');
  const validity = await page.$eval('input[name=name]', (el) => {
    const verdict = (v) => { el.value = v; return el.validity.patternMismatch; };
    const out = { bad: verdict('Ann!'), good: verdict('ann-b_2') };
    el.value = 'ann';
    return out;
  });
  // Chromium ignores a pattern it cannot compile, and then nothing ever mismatches.
  check(validity.bad === true && validity.good === false, `name pattern: ${JSON.stringify(validity)}`);

  step('sign in as ann');
  await page.fill('input[name=name]', 'ann');
  await page.click('[data-testid=sign-in]');
  await page.waitForSelector('[data-testid=connect]');
  await audit('app home, no connection');
  const brand = (await page.textContent('header .brand')).trim();
  const offered = (await page.$$eval('[data-testid=cal-users] b', (bs) => bs.map((b) => b.textContent))).sort();

  step('connect: sign in to Cal.com as alice');
  await page.click('[data-testid=connect]');
  await page.waitForSelector('button.user');
  await shot('02-cal-sign-in');
  await audit('sandbox sign-in');
  const choices = (await page.$$eval('button.user', (bs) => bs.map((b) =>
    `${b.querySelector('strong').textContent} (${b.querySelector('.muted').textContent.split(' · ')[0]})`))).sort();
  check(JSON.stringify(choices) === JSON.stringify(offered),
    `the app says Cal.com offers ${JSON.stringify(offered)}, the sign-in page offers ${JSON.stringify(choices)}`);
  await page.click('button.user:has-text("alice")');

  step('consent names the app as the app does; allow');
  await page.waitForSelector('[data-testid=allow-button]');
  await shot('03-cal-consent');
  await audit('sandbox consent');
  const asks = await page.textContent('h1');
  check(asks.startsWith(`${brand} would like access`), `consent says "${asks}", the app is "${brand}"`);
  await page.click('[data-testid=allow-button]');

  step('connection page with the weekly grid');
  await page.waitForSelector('[data-testid=weekly-grid]');
  const blocks = await page.$$eval('[data-testid=weekly-grid] g.avail',
    (gs) => gs.map((g) => `${g.dataset.day} ${g.textContent}`));
  const expected = ['Monday 09:00–17:00', 'Tuesday 09:00–17:00', 'Wednesday 09:00–17:00',
    'Thursday 09:00–17:00', 'Friday 09:00–13:00'];
  check(JSON.stringify(blocks.sort()) === JSON.stringify(expected.sort()),
    `grid blocks ${JSON.stringify(blocks)}, expected ${JSON.stringify(expected)}`);
  const status = await page.textContent('[data-testid=status]');
  check(status.trim() === 'active', `status ${status}`);
  const before = await page.textContent('[data-testid=countdown]');
  await page.waitForFunction((b) => document.querySelector('[data-testid=countdown]').textContent !== b, before);
  // Times read as times, in Alice's zone (the grid's): no raw timestamps anywhere.
  const main = await page.textContent('main');
  check(!/\d{4}-\d\d-\d\dT\d\d:/.test(main), 'a raw timestamp on the connection page');
  const starts = await page.$$eval('[data-testid=bookings] td:first-child', (tds) => tds.map((t) => t.textContent.trim()));
  check(starts.length > 0 && starts.every((s) => /^[A-Z][a-z]{2} \d{1,2} [A-Z][a-z]{2}, \d\d:\d\d (GMT|BST)$/.test(s)),
    `booking times ${JSON.stringify(starts)}`);
  await shot('04-connection-grid');
  await audit('app connection');
  const connectionUrl = page.url();

  step('the weekly grid on a 390 px phone screen');
  await page.setViewportSize(phone);
  await page.reload();
  await page.waitForSelector('[data-testid=weekly-grid-compact]', { state: 'visible' });
  check(!(await page.isVisible('[data-testid=weekly-grid]')), 'the wide grid shows on a phone');
  const fit = await page.evaluate(() => {
    const grid = document.querySelector('[data-testid=weekly-grid-compact]');
    const box = grid.getBoundingClientRect();
    const label = grid.querySelector('g.avail text').getBoundingClientRect();
    return { page: document.documentElement.scrollWidth, right: box.right, label: label.height,
      days: [...grid.querySelectorAll('g.avail')].map((g) => g.dataset.day) };
  });
  check(fit.page <= phone.width, `the page is ${fit.page} px wide on a ${phone.width} px screen`);
  check(fit.right <= phone.width, `the grid ends at ${fit.right} px`);
  check(fit.label >= 10, `grid labels are ${fit.label} px tall`);
  check(fit.days.length === 5, `phone grid days ${JSON.stringify(fit.days)}`);
  await shot('04b-connection-phone');
  await audit('app connection, 390 px');
  await page.goto(appUrl);
  await shot('04c-home-phone');
  await audit('app home with a connection, 390 px');
  await page.goto(connectionUrl);
  await page.setViewportSize(wide);

  step('disconnect asks first; keep it');
  await page.click('[data-testid=disconnect]');
  await page.waitForSelector('[data-testid=confirm-disconnect]');
  await shot('04d-confirm-disconnect');
  await audit('app confirm disconnect');
  await page.click('[data-testid=cancel-disconnect]');
  await page.waitForSelector('[data-testid=weekly-grid]');
  check(page.url() === connectionUrl, `cancel went to ${page.url()}`);

  step('demo control: an outage; the countdown agrees with the notice');
  await page.click('[data-testid=demo-outage]');
  await page.waitForSelector('[data-notice=outage]');
  const during = await page.textContent('[data-testid=countdown]');
  check(during.trim() === 'expired', `countdown during the outage: ${during}`);
  await shot('04e-outage');
  await audit('app connection, outage');
  await page.click('[data-testid=demo-recover]');
  await page.waitForSelector('[data-notice=recovered]');
  // Refresh now (not held back by the broker's backoff): a new token, and the countdown runs.
  await page.click('[data-testid=refresh]');
  await page.waitForSelector('[data-notice=refreshed]');
  const after = await page.textContent('[data-testid=countdown]');
  check(/^\d+ min \d\d s$/.test(after.trim()), `countdown after the outage and a refresh: ${after}`);

  step('demo control: revoke the grant at Cal.com');
  await page.click('[data-testid=demo-revoke]');
  await page.waitForSelector('[data-testid=reconnect-offer]');
  const revoked = await page.textContent('[data-testid=status]');
  check(revoked.trim() === 'needs_reauth', `status after revoke: ${revoked}`);
  await shot('05-revoked-reconnect-offer');
  await audit('app connection, needs_reauth');

  step('deny path: sign in as ben, connect, go back at Cal.com');
  await page.goto(appUrl);
  await page.click('header form button');
  await page.fill('input[name=name]', 'ben');
  await page.click('[data-testid=sign-in]');
  await page.click('[data-testid=connect]');
  await page.waitForSelector('button[value=deny]');
  await page.click('button[value=deny]');
  await page.waitForSelector('[data-outcome=access_denied]');
  await shot('06-denied');
  await audit('app access denied');
  await page.goto(`${appUrl}/no-such-page`);
  await page.waitForSelector('[data-outcome=not_found]');
  await audit('app not found');

  if (adminPassword) {
    step('operator dashboard');
    await page.goto(`${appUrl}/admin`);
    await page.waitForSelector('[data-testid=admin-connection]');
    const text = await page.textContent('main');
    check(text.includes('needs_reauth'), 'the dashboard does not show the revoked connection');
    await shot('07-operator-dashboard');
    await audit('app operator dashboard');

    step('operator: the connection page, refresh (refused: the grant is revoked), disconnect');
    await page.click('[data-testid=admin-connection] a');
    await page.waitForSelector('[data-testid=admin-detail]');
    const person = await page.textContent('[data-testid=admin-person]');
    check(person.includes('Alice Anderson'), `the connection page names ${person}`);
    check((await page.$$('[data-testid=admin-event]')).length > 0, 'no events on the connection page');
    await shot('07b-operator-connection');
    await audit('app operator connection page');
    await page.click('[data-testid=admin-refresh]');
    await page.waitForSelector('[data-outcome]');
    const refreshOutcome = await page.getAttribute('[data-outcome]', 'data-outcome');
    check(refreshOutcome === 'refresh-failed', `the operator's refresh of a revoked connection says ${refreshOutcome}`);
    check((await page.textContent('[data-testid=admin-status]')).trim() === 'needs_reauth', 'status after the refused refresh');
    await shot('07c-operator-refresh-refused');
    await audit('app operator connection page, refresh refused');
    await page.click('[data-testid=admin-disconnect]');
    await page.waitForSelector('[data-testid=admin-deleted]');
    const disconnectOutcome = await page.getAttribute('[data-outcome]', 'data-outcome');
    check(disconnectOutcome === 'disconnected', `the operator's disconnect says ${disconnectOutcome}`);
    await shot('07d-operator-disconnected');
    await audit('app operator connection page, deleted');
    await page.goto(`${appUrl}/admin`);
    await page.waitForSelector('[data-testid=admin-empty]');
  }

  step("the broker's pages");
  await page.goto(`${brokerUrl}/connect/not-a-connect-link`);
  await page.waitForSelector('[data-outcome]');
  await shot('08-broker-bad-link');
  await audit('broker, damaged connect link');
  await page.goto(`${brokerUrl}/oauth/callback?state=unknown&code=nothing`);
  await page.waitForSelector('[data-outcome]');
  await audit('broker, unknown callback');

  step("the sandbox's pages");
  await page.goto(`${sandboxUrl}/_sandbox/`);
  await page.waitForSelector('h1');
  await shot('09-sandbox-controls');
  await audit('sandbox controls');
  await page.goto(`${sandboxUrl}/auth/oauth2/authorize?client_id=no-such-client&redirect_uri=${encodeURIComponent('http://127.0.0.1:9/cb')}&response_type=code&state=s`);
  await page.waitForSelector('h1:has-text("Authorization error")');
  await shot('10-sandbox-error');
  await audit('sandbox authorization error');

  check(violations.length === 0,
    `axe found ${violations.length} critical or serious violations:\n  ${violations.join('\n  ')}`);
  console.log(`axe: ${audited} pages, no critical or serious violation`);
  console.log('browser flow ok');
} catch (e) {
  failed = true;
  console.error(`browser flow failed at ${page.url()}: ${e.message}`);
  await shot('99-failure').catch(() => {});
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
