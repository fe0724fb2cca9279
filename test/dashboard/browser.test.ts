// The dashboard in a real headless Chromium against a real broker and a simulated fleet.
import t from 'tap';
import { connectAsync } from 'mqtt';
import { browserSkipReason, CHROMIUM, CHROMIUM_ARGS, startStack, until } from './support.js';

const skip = browserSkipReason();
if (skip) {
  t.plan(0, skip);
} else {
  const { chromium } = await import('playwright-core');
  const DEVICES = 120;
  // with an operator key, as a fleet operator runs it: the page logs in with the generated token
  // and sends the CSRF token with each action
  const stack = await startStack({ devices: DEVICES, rate: 1, operator: true });
  // every wait is bounded, so a stuck step fails with its name instead of the file expiring silently
  // at tap's 300 s (CI once did, with nothing to say where)
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 60_000 });
  t.teardown(async () => {
    // playwright kills the browser when this process exits, so a close that hangs is only waited out
    await Promise.race([browser.close(), new Promise((r) => setTimeout(r, 10_000).unref())]);
    await stack.stop();
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 800 } });
  page.setDefaultTimeout(20_000);
  page.setDefaultNavigationTimeout(20_000);
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  const base = stack.dash.url;

  t.test('the fleet page lists every simulated device in a virtualised list', { timeout: 90_000 }, async (t) => {
    // without the token the page is refused; the printed ?token= URL logs in (cookie) and lands on /
    t.equal((await page.goto(base))?.status(), 401, 'no token, no page');
    const landed = await page.goto(stack.dash.loginUrl);
    t.equal(landed?.url(), base, 'the token is traded for a cookie and dropped from the URL');
    await page.waitForFunction((n) => document.querySelector('#counts')?.textContent?.startsWith(`${n} devices`), DEVICES, {
      timeout: 15_000,
    });
    t.match(await page.textContent('#counts'), new RegExp(`^${DEVICES} devices · ${DEVICES} online`));
    const rows = await page.locator('.row:not([hidden])').count();
    t.ok(rows > 10 && rows < 50, `${rows} rows in the DOM for ${DEVICES} devices`);
    // the spacer is as tall as the whole list, so the scrollbar is honest
    const h = await page.$eval('#rows', (e) => (e as HTMLElement).offsetHeight);
    t.equal(h, DEVICES * 44);
    // scroll to the end: the last devices get rendered, still with a small DOM
    await page.selectOption('#f-sort', 'id');
    await page.$eval('#viewport', (e) => {
      e.scrollTop = e.scrollHeight;
    });
    await page.waitForSelector(`.row[data-id="sim-0${DEVICES}"]`, { timeout: 5000 });
    t.ok((await page.locator('.row:not([hidden])').count()) < 50);
    // a row shows board, model @ level, budgets and three sparklines
    const row = page.locator(`.row[data-id="sim-0${DEVICES}"]`);
    t.match(await row.textContent(), /online.*(raspberry|jetson|x86).*ch_PP-OCRv4_det_infer.*@.*≤\d+ms.*ms.*MB.*°C/);
    await until('sparklines with data', async () => (await row.locator('svg path').count()) === 3, 5000);
    // filter by board: every visible row is on that board
    await page.$eval('#viewport', (e) => {
      e.scrollTop = 0;
    });
    await page.selectOption('#f-board', 'raspberry-pi-5');
    await page.waitForFunction(() => /showing 30$/.test(document.querySelector('#counts')?.textContent ?? ''));
    const boards = await page.$$eval('.row:not([hidden]) .board', (els) => els.map((e) => e.textContent));
    t.ok(boards.length > 0 && boards.every((b) => b === 'raspberry-pi-5'), 'board filter');
    await page.selectOption('#f-board', '');
    // sort by budget violation: the worst offender first
    await page.selectOption('#f-sort', 'violation');
    // the simulated devices keep publishing, so two close offenders can swap between the page's
    // last render and this read: compare the page with the server until they agree
    let topId: string | undefined;
    let worst = stack.dash.fleet.summaries()[0]!;
    await until(
      'worst violation sorts first',
      async () => {
        topId = await page.$eval('.row:not([hidden])', (e) => (e as HTMLElement).dataset.id);
        worst = stack.dash.fleet.summaries().reduce((a, b) => (b.violation > a.violation ? b : a));
        return topId === worst.id;
      },
      5000,
    ).catch(() => undefined);
    t.ok(worst.violation > 0, 'some simulated devices miss a budget');
    t.equal(topId, worst.id, 'worst violation sorts first');
  });

  t.test('a device whose connection dies shows offline within 2 s of its Last Will', { timeout: 90_000 }, async (t) => {
    const victim = 'sim-0005';
    await page.fill('#f-search', victim);
    await page.selectOption('#f-state', 'all');
    await page.waitForSelector(`.row[data-id="${victim}"][data-online="1"]`);
    // the page notes when the row flips, by its own clock (same machine as ours)
    await page.evaluate((id) => {
      const w = window as unknown as { offlineAt?: number };
      new MutationObserver(() => {
        if (!w.offlineAt && document.querySelector(`.row[data-id="${id}"][data-online="0"]`)) w.offlineAt = Date.now();
      }).observe(document.querySelector('#rows')!, { subtree: true, attributes: true, childList: true });
    }, victim);
    const watcher = await connectAsync(stack.broker.url);
    t.teardown(() => watcher.endAsync());
    let willAt = 0;
    watcher.on('message', (_topic, payload) => {
      if (!willAt && /offline/.test(payload.toString())) willAt = Date.now();
    });
    await watcher.subscribeAsync(`edgefit/${victim}/status`, { qos: 1 });
    await new Promise((r) => setTimeout(r, 300));
    const killedAt = Date.now();
    stack.sim.get(victim)!.kill();
    await until('the Last Will', () => willAt, 10_000);
    const offlineAt = await until(
      'the row to show offline',
      () => page.evaluate(() => (window as unknown as { offlineAt?: number }).offlineAt),
      5000,
      20,
    );
    t.comment(`socket cut -> Last Will ${willAt - killedAt} ms, Last Will -> page ${offlineAt - willAt} ms`);
    t.ok(offlineAt - willAt < 2000, `page showed offline ${offlineAt - willAt} ms after the Last Will`);
    t.equal(await page.textContent(`.row[data-id="${victim}"] .state`), 'offline');
    await page.selectOption('#f-state', 'offline');
    await page.fill('#f-search', '');
    await page.waitForFunction(() => /showing 1$/.test(document.querySelector('#counts')?.textContent ?? ''));
    t.equal(await page.$eval('.row:not([hidden])', (e) => (e as HTMLElement).dataset.id), victim, 'state filter: offline shows just it');
  });

  t.test('set-budget from the device page round-trips to the device and shows its response', { timeout: 90_000 }, async (t) => {
    const id = 'sim-0002';
    await page.goto(`${base}#/d/${id}`);
    await page.waitForSelector('#budget-form');
    // the page asked the device for its frontier on load: the plot shows it with the deployed point
    await page.waitForSelector('#frontier circle.pt.chosen', { timeout: 10_000 });
    t.equal(await page.locator('#frontier circle.pt').count(), 5, 'five measured levels');
    t.ok((await page.locator('#frontier .budget-line').count()) >= 1, 'budget lines drawn');
    await page.fill('input[name=latencyMs]', '5000');
    await page.click('#act-set-budget');
    await page.waitForSelector('.act[data-verb="set-budget"][data-state="ok"]', { timeout: 10_000 }).catch(async (e: unknown) => {
      await page.screenshot({ path: 'tmp/dash-fail.png' });
      t.comment(await page.textContent('.actions'));
      throw e;
    });
    const resp = await page.textContent('.act[data-verb="set-budget"][data-state="ok"] .resp');
    t.match(resp, /"ok": true/);
    t.match(resp, /"latencyMs": 5000/);
    // the device then reports metrics under the new budget: the header follows live
    await page.waitForFunction(() => /budget ≤ 5000 ms/.test(document.querySelector('#hdr')?.textContent ?? ''), undefined, {
      timeout: 10_000,
    });
    t.pass('header shows the new budget from live metrics');
    // a bad value is refused with a clear message, nothing is sent
    const before = await page.locator('.act').count();
    await page.fill('input[name=latencyMs]', '-3');
    await page.click('#act-set-budget');
    await page.waitForFunction(() => (document.querySelector('#formerr')?.textContent ?? '').length > 0);
    t.match(await page.textContent('#formerr'), /latencyMs must be > 0/);
    t.equal(await page.locator('.act').count(), before);
    await page.waitForSelector('#ch-lat svg path');
    t.ok((await page.locator('#events tr').count()) >= 1, 'event log shows events');
    t.same(pageErrors, [], 'no script errors in the page');
  });

  t.test('when the dashboard loses the broker the page says so, and recovers', { timeout: 90_000 }, async (t) => {
    await page.goto(base);
    await page.waitForFunction(() => document.querySelector('#conn')?.textContent === 'live');
    await stack.broker.stop();
    await page.waitForFunction(() => /broker unreachable/.test(document.querySelector('#conn')?.textContent ?? ''), undefined, {
      timeout: 5000,
    });
    t.equal(await page.getAttribute('#conn', 'data-state'), 'down');
    await stack.broker.restart();
    await page.waitForFunction(() => document.querySelector('#conn')?.textContent === 'live', undefined, { timeout: 15_000 });
    t.pass('live again once the dashboard has reconnected');
  });
}
