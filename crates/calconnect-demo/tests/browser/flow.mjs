// Drives the calconnect demo's real pages in headless Chromium (Debian's package):
// sign in to the example app, connect Cal.com (sandbox sign-in + consent), see the weekly grid,
// revoke through the demo controls and see the reconnect offer, then the deny path.
// Usage: node flow.mjs <app-url> <artifacts-dir> (admin password in $CALCONNECT_DEMO_ADMIN). Prints "browser flow ok" on success.
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [appUrl, artifacts] = process.argv.slice(2);
const adminPassword = process.env.CALCONNECT_DEMO_ADMIN;
if (!appUrl || !artifacts) {
  console.error('usage: node flow.mjs <app-url> <artifacts-dir>');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), 'calconnect-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1100, height: 900 },
  ...(adminPassword ? { httpCredentials: { username: 'admin', password: adminPassword } } : {}),
});
context.setDefaultTimeout(15000);
const page = context.pages()[0] ?? await context.newPage();
const shot = (name) => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
const step = (what) => console.log(`step: ${what}`);
let failed = false;
try {
  step('open the app and sign in as ann');
  await page.goto(appUrl);
  await shot('01-app-sign-in');
  await page.fill('input[name=name]', 'ann');
  await page.click('[data-testid=sign-in]');
  await page.waitForSelector('[data-testid=connect]');

  step('connect: sign in to Cal.com as alice');
  await page.click('[data-testid=connect]');
  await page.waitForSelector('button.user');
  await shot('02-cal-sign-in');
  await page.click('button.user:has-text("alice")');

  step('consent: allow');
  await page.waitForSelector('[data-testid=allow-button]');
  await shot('03-cal-consent');
  await page.click('[data-testid=allow-button]');

  step('connection page with the weekly grid');
  await page.waitForSelector('[data-testid=weekly-grid]');
  const blocks = await page.$$eval('[data-testid=weekly-grid] g.avail',
    (gs) => gs.map((g) => `${g.dataset.day} ${g.textContent}`));
  const expected = ['Monday 09:00–17:00', 'Tuesday 09:00–17:00', 'Wednesday 09:00–17:00',
    'Thursday 09:00–17:00', 'Friday 09:00–13:00'];
  if (JSON.stringify(blocks.sort()) !== JSON.stringify(expected.sort())) {
    throw new Error(`grid blocks ${JSON.stringify(blocks)}, expected ${JSON.stringify(expected)}`);
  }
  const status = await page.textContent('[data-testid=status]');
  if (status.trim() !== 'active') throw new Error(`status ${status}`);
  const before = await page.textContent('[data-testid=countdown]');
  await page.waitForFunction((b) => document.querySelector('[data-testid=countdown]').textContent !== b, before);
  await shot('04-connection-grid');

  step('demo control: revoke the grant at Cal.com');
  await page.click('[data-testid=demo-revoke]');
  await page.waitForSelector('[data-testid=reconnect-offer]');
  const after = await page.textContent('[data-testid=status]');
  if (after.trim() !== 'needs_reauth') throw new Error(`status after revoke: ${after}`);
  await shot('05-revoked-reconnect-offer');

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

  if (adminPassword) {
    step('operator dashboard');
    await page.goto(`${appUrl}/admin`);
    await page.waitForSelector('[data-testid=admin-connection]');
    const text = await page.textContent('main');
    if (!text.includes('needs_reauth')) throw new Error('the dashboard does not show the revoked connection');
    await shot('07-operator-dashboard');
  }
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
