import { mkdirSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GroqSimulator, startGroqSimulator } from '../../sim/groq-simulator.js';
import { launchChromium, openPage, seriousAxeViolations } from '../helpers/browser.js';
import { type LocalStack, startLocalStack } from '../helpers/local-stack.js';

/**
 * The web pages in a real browser (Debian's chromium through playwright-core)
 * against `make up`: Caddy serving web/dist in front of two instances, the
 * upstream a simulator of this test's own so it can be slowed down.
 * Screenshots and the measured figures go to web/test-results/ (not committed).
 */
const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const OUT = join(REPO_ROOT, 'web/test-results');
const ADMIN_TOKEN = 'e2e-web-admin-token-0123456789';
const KEY = 'e2e-web-key';
const LABEL = 'What is in your way right now?';

let simulator: GroqSimulator;
let stack: LocalStack;
let browser: Browser;
const figures: Record<string, unknown> = {};

beforeAll(async () => {
  mkdirSync(OUT, { recursive: true });
  // First, so a machine without chromium fails in a second with what to install.
  browser = await launchChromium();
  simulator = await startGroqSimulator({ latencyMs: 20, chunkDelayMs: 15, apiKey: KEY });
  stack = await startLocalStack(2, {
    GROQ_BASE_URL: simulator.url,
    GROQ_API_KEY: KEY,
    ADMIN_TOKEN,
    SIGNUPS_PER_IP_PER_HOUR: '1000',
  });
});

afterAll(async () => {
  await browser?.close();
  await stack?.make('down');
  await simulator?.close();
  writeFileSync(join(OUT, 'figures.json'), `${JSON.stringify(figures, null, 2)}\n`);
});

async function openChat(options: Parameters<typeof openPage>[1] = {}) {
  const watched = await openPage(browser, options);
  await watched.page.goto(`${stack.publicUrl}/`);
  await watched.page.waitForFunction(() => document.documentElement.dataset.ready === 'true');
  return watched;
}

async function ask(page: Page, message: string): Promise<void> {
  const box = page.getByLabel(LABEL);
  await box.fill(message);
  await box.press('Enter');
}

/** The text of the newest answer once it is complete (its turn no longer busy). */
async function lastAnswer(page: Page, timeout = 30_000): Promise<string> {
  const handle = await page.waitForFunction(
    () => {
      const turns = document.querySelectorAll('.turn.assistant');
      const turn = turns[turns.length - 1];
      const text = turn?.querySelector('.text')?.textContent ?? '';
      return turn && !turn.hasAttribute('aria-busy') && text !== '' ? text : undefined;
    },
    undefined,
    { timeout },
  );
  return (await handle.jsonValue()) as string;
}

/** One request through Caddy with exact headers (no decompression): status, headers, body length. */
function raw(
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; bytes: number }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(`${stack.publicUrl}${path}`, { headers }, (response) => {
      let bytes = 0;
      response.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
      });
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, bytes }));
    });
    request.on('error', reject);
    request.end();
  });
}

describe('the chat page', () => {
  it('answers a message typed and sent with Enter, streamed, and announces it', async () => {
    const { page, problems } = await openChat();
    const tti = await page.evaluate(() => ({
      ready: performance.getEntriesByName('focus-ready')[0]?.startTime ?? Number.NaN,
      domInteractive: (performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming).domInteractive,
    }));
    figures.chatTimeToInteractiveMs = Math.round(tti.ready);
    figures.chatDomInteractiveMs = Math.round(tti.domInteractive);
    process.stdout.write(`[web] chat page interactive after ${Math.round(tti.ready)} ms (headless chromium)\n`);

    const posts: string[] = [];
    page.on('request', (request) => {
      if (request.method() === 'POST') {
        posts.push(new URL(request.url()).pathname);
      }
    });
    await expect.poll(() => page.evaluate(() => localStorage.getItem('focus.account'))).toContain('"token"');
    await ask(page, 'I cannot start my essay (web)');
    expect(await lastAnswer(page)).toMatch(/^\[sim\] /);
    expect(posts).toEqual(['/api/chat/stream']);
    await expect.poll(() => page.locator('#live').textContent()).toMatch(/^Answer: \[sim\] /);
    // Nothing left in the box, focus back in it for the next message.
    expect(await page.getByLabel(LABEL).inputValue()).toBe('');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('message');
    expect(problems).toEqual([]);
    await page.context().close();
  });

  it('shows the place in line and a progress bar when streaming is unavailable', async () => {
    simulator.configure({ latencyMs: 2500 });
    try {
      const { page } = await openChat();
      await page.route('**/api/chat/stream', (route) => route.abort('failed'));
      await ask(page, 'Streaming is off: the queue answers (web)');
      await page.locator('#status-text', { hasText: /number \d+ in line, about \d+ s/i }).waitFor({ timeout: 10_000 });
      expect(await page.locator('#wait-progress').isVisible()).toBe(true);
      expect(await lastAnswer(page)).toMatch(/^\[sim\] /);
      expect(await page.locator('#wait-progress').isVisible()).toBe(false);
      await page.context().close();
    } finally {
      simulator.configure({ latencyMs: 20 });
    }
  });

  it('counts down a 429 from its Retry-After, then retries: the stream, and a queued message with the same Idempotency-Key', async () => {
    const { page } = await openChat();
    const refusal = {
      status: 429,
      headers: { 'retry-after': '1', 'content-type': 'application/json' },
      body: JSON.stringify({ error: { code: 'rate_limited', message: 'Too many requests.' }, requestId: 'e2e' }),
    };
    let streams = 0;
    page.on('request', (request) => {
      if (request.url().endsWith('/api/chat/stream')) {
        streams += 1;
      }
    });
    await page.route('**/api/chat/stream', (route) => route.fulfill(refusal), { times: 1 });
    const started = Date.now();
    await ask(page, 'A busy moment, then my answer (web)');
    await page.locator('#status-text', { hasText: 'Busy right now. Trying again in 1 s…' }).waitFor({ timeout: 5000 });
    expect(await page.locator('#wait-progress').isVisible()).toBe(true);
    expect(await lastAnswer(page)).toMatch(/^\[sim\] /);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(streams).toBe(2);

    // Through the queue: the refused POST and its retry carry one key, so the backend queues it once.
    await page.unroute('**/api/chat/stream');
    await page.route('**/api/chat/stream', (route) => route.abort('failed'));
    const keys: string[] = [];
    await page.route('**/api/chat/queue', async (route) => {
      keys.push(route.request().headers()['idempotency-key'] ?? '');
      await (keys.length === 1 ? route.fulfill(refusal) : route.continue());
    });
    await ask(page, 'A busy queue, then my answer (web)');
    await page.locator('#status-text', { hasText: /Trying again in \d s/ }).waitFor({ timeout: 5000 });
    expect(await lastAnswer(page)).toMatch(/^\[sim\] /);
    expect(keys).toHaveLength(2);
    expect(keys[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(keys[1]).toBe(keys[0]);
    await page.context().close();
  });

  it('keeps the typed text when the network is gone, and sends it once it is back', async () => {
    const { page } = await openChat();
    await page.context().setOffline(true);
    await ask(page, 'Offline for a moment (web)');
    await page
      .getByRole('alert')
      .getByText(/No connection/)
      .waitFor();
    expect(await page.getByLabel(LABEL).inputValue()).toBe('Offline for a moment (web)');
    await page.context().setOffline(false);
    await page.getByLabel(LABEL).press('Enter');
    expect(await lastAnswer(page)).toMatch(/^\[sim\] /);
    await page.context().close();
  });

  it('shows the safety answer with its resources as tel: and web links', async () => {
    const { page } = await openChat({ locale: 'en-US' });
    await ask(page, 'I want to kill myself');
    await page.locator('.safety').waitFor();
    const calls = await page
      .locator('.safety a[href^="tel:"]')
      .evaluateAll((links) => links.map((link) => link.getAttribute('href')));
    expect(calls).toContain('tel:988');
    expect(await page.locator('.safety a[href^="https://"]').count()).toBeGreaterThan(0);
    await page.context().close();
  });

  it('speaks Spanish to a Spanish browser', async () => {
    const { page } = await openChat({ locale: 'es-ES' });
    expect(await page.evaluate(() => document.documentElement.lang)).toBe('es');
    await page.getByLabel('¿Qué te está frenando ahora mismo?').waitFor();
    expect(await page.getByRole('button', { name: 'Borrar mis datos' }).isVisible()).toBe(true);
    await page.context().close();
  });

  it('deletes the data after a confirmation: the old token is refused afterwards', async () => {
    const { page } = await openChat();
    await ask(page, 'Something to delete (web)');
    await lastAnswer(page);
    const token = await page.evaluate(
      () => (JSON.parse(localStorage.getItem('focus.account') ?? '{}') as { token?: string }).token,
    );
    expect(token).toBeTruthy();
    await page.getByRole('button', { name: 'Delete my data' }).click();
    const dialog = page.getByRole('dialog', { name: 'Delete your data?' });
    await dialog.waitFor();
    // Cancel has the focus: Enter alone never deletes.
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('delete-cancel');
    const deleted = page.waitForResponse((response) => response.request().method() === 'DELETE');
    await dialog.getByRole('button', { name: 'Delete everything' }).click();
    expect((await deleted).status()).toBe(204);
    await page.getByText('Your data is deleted.', { exact: false }).first().waitFor();
    expect(await page.locator('.turn').count()).toBe(0);
    expect(await page.evaluate(() => localStorage.getItem('focus.account'))).toBeNull();
    const me = await fetch(`${stack.publicUrl}/api/me`, { headers: { authorization: `Bearer ${token}` } });
    expect(me.status).toBe(401);
    await page.context().close();
  });
});

describe('the operations page', () => {
  it('asks for the token, refuses a wrong one, then shows active users as /dashboard counts them', async () => {
    const anonymous = await fetch(`${stack.publicUrl}/ops/api/dashboard`);
    expect(anonymous.status).toBe(401);
    expect(((await anonymous.json()) as { error: { code: string } }).error.code).toBe('unauthorized');
    const wrong = await fetch(`${stack.publicUrl}/ops/api/stats`, { headers: { authorization: 'Bearer nope-nope' } });
    expect(wrong.status).toBe(401);
    // The instances' own paths stay hidden on the public entry.
    expect((await fetch(`${stack.publicUrl}/dashboard`)).status).toBe(404);

    const { page, problems } = await openPage(browser);
    await page.goto(`${stack.publicUrl}/ops`);
    const tokenBox = page.getByLabel('ADMIN_TOKEN');
    await tokenBox.waitFor();
    expect(await page.locator('#board').isVisible()).toBe(false);
    await tokenBox.fill('not-the-admin-token');
    await tokenBox.press('Enter');
    await page.getByText(/That token was refused/).waitFor();

    await page.getByLabel('ADMIN_TOKEN').fill(ADMIN_TOKEN);
    await page.getByLabel('ADMIN_TOKEN').press('Enter');
    await page.locator('#board').waitFor();
    const dashboard = async () => {
      const response = await fetch(`${stack.publicUrl}/ops/api/dashboard`, {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      expect(response.headers.get('cache-control')).toBe('no-store');
      return ((await response.json()) as { activeUsers: number }).activeUsers;
    };
    await expect
      .poll(
        async () => {
          const shown = await page.locator('#active-users').textContent();
          return shown === String(await dashboard());
        },
        { timeout: 15_000 },
      )
      .toBe(true);
    expect(Number(await page.locator('#active-users').textContent())).toBeGreaterThan(0);
    await page.locator('#instances tr').first().waitFor();
    expect(await page.locator('#instances tr td:first-child').allTextContents()).toEqual(
      expect.arrayContaining([expect.stringMatching(/^backend-\d+$/)]),
    );
    // It polls: the time of the figures moves on.
    const first = await page.locator('#updated').textContent();
    await expect.poll(() => page.locator('#updated').textContent(), { timeout: 6000 }).not.toBe(first);
    expect(await page.locator('#chart-traffic canvas').count()).toBeGreaterThan(0);
    // The wrong token's two refusals are the only errors the browser logs.
    expect(problems.filter((problem) => !problem.includes('status of 401'))).toEqual([]);
    await page.context().close();
  });
});

describe('both pages', () => {
  const openOps = async (options: Parameters<typeof openPage>[1]) => {
    const watched = await openPage(browser, options);
    await watched.page.goto(`${stack.publicUrl}/ops`);
    await watched.page.getByLabel('ADMIN_TOKEN').fill(ADMIN_TOKEN);
    await watched.page.getByLabel('ADMIN_TOKEN').press('Enter');
    await watched.page.locator('#active-users').filter({ hasText: /^\d+$/ }).waitFor();
    return watched;
  };

  /** Serious axe violations of a page in both colour schemes (switched in place: the CSS follows at once). */
  const violationsBothSchemes = async (page: Page, name: string) => {
    const found: { page: string; colorScheme: string; violations: unknown[] }[] = [];
    for (const colorScheme of ['light', 'dark'] as const) {
      await page.emulateMedia({ colorScheme });
      found.push({ page: name, colorScheme, violations: await seriousAxeViolations(page) });
    }
    return found;
  };
  const none = (name: string) => ['light', 'dark'].map((colorScheme) => ({ page: name, colorScheme, violations: [] }));

  it('have no serious or critical axe-core violations, light and dark, no CSP or script error; the charts follow a switch of scheme', async () => {
    const chat = await openChat();
    await ask(chat.page, 'Check my contrast');
    await lastAnswer(chat.page);
    expect(await violationsBothSchemes(chat.page, 'chat')).toEqual(none('chat'));
    await chat.page.getByRole('button', { name: 'Delete my data' }).click();
    expect(await violationsBothSchemes(chat.page, 'chat dialog')).toEqual(none('chat dialog'));
    expect(chat.problems).toEqual([]);
    await chat.page.context().close();

    const ops = await openOps({});
    expect(await violationsBothSchemes(ops.page, 'ops')).toEqual(none('ops'));
    // Switched to dark on the open page: the charts' canvas and legend were drawn again in its colours.
    const colours = await ops.page.evaluate(() => {
      const probe = document.body.appendChild(document.createElement('span'));
      probe.style.color = 'var(--chart-1)';
      const theme = getComputedStyle(probe).color;
      probe.remove();
      const markers = [...document.querySelectorAll<HTMLElement>('.u-legend .u-marker')].filter((m) => m.style.border);
      return {
        theme,
        charts: document.querySelectorAll('.uplot').length,
        first: getComputedStyle(markers[0] as Element).borderTopColor,
      };
    });
    expect(colours.charts).toBeGreaterThan(0);
    expect(colours.first).toBe(colours.theme);
    expect(ops.problems).toEqual([]);
    await ops.page.context().close();
  });

  it('fit a 360 px phone and 200 % zoom without sideways scrolling; screenshots at 360 and 1280 px', async () => {
    const shots: string[] = [];
    for (const colorScheme of ['light', 'dark'] as const) {
      // Loaded on the phone, then widened: the layout (and the charts, on their ResizeObserver) follow the window.
      const phone = { width: 360, height: 780 };
      const chat = await openChat({ viewport: phone, colorScheme });
      await ask(chat.page, 'My desk is a mess and I cannot start');
      await lastAnswer(chat.page);
      const ops = await openOps({ viewport: phone, colorScheme });
      // Two samples, so the charts draw lines.
      const first = await ops.page.locator('#updated').textContent();
      await expect.poll(() => ops.page.locator('#updated').textContent(), { timeout: 6000 }).not.toBe(first);
      for (const width of [360, 640, 1280]) {
        for (const [name, page] of [
          ['chat', chat.page],
          ['ops', ops.page],
        ] as const) {
          await page.setViewportSize({ width, height: width < 700 ? 780 : 900 });
          // The next frame: layout and the charts' resize done.
          await page.evaluate(
            () => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve))),
          );
          const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
          expect({ name, width, colorScheme, overflow }).toEqual({ name, width, colorScheme, overflow: 0 });
          // 640 px is a 1280 px window at 200 % zoom: checked, not kept.
          if (width !== 640) {
            const file = join(OUT, `${name}-${width}-${colorScheme}.png`);
            await page.screenshot({ path: file, fullPage: true });
            shots.push(file);
          }
        }
      }
      await chat.page.context().close();
      await ops.page.context().close();
    }
    figures.screenshots = shots;
  });
});

describe('static files through Caddy, as a CDN would cache them', () => {
  it('serves hashed assets immutable and compressed, index.html revalidated with an ETag, strict page headers', async () => {
    const index = await fetch(`${stack.publicUrl}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toMatch(/^text\/html/);
    expect(index.headers.get('cache-control')).toBe('no-cache');
    const etag = index.headers.get('etag');
    expect(etag).toBeTruthy();
    const csp = index.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).toContain("frame-ancestors 'none'");
    expect(index.headers.get('referrer-policy')).toBe('no-referrer');
    expect(index.headers.get('permissions-policy')).toContain('camera=()');
    expect(index.headers.get('x-content-type-options')).toBe('nosniff');
    const html = await index.text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    const again = await fetch(`${stack.publicUrl}/`, { headers: { 'if-none-match': etag ?? '' } });
    expect(again.status).toBe(304);

    const script = /src="(\/assets\/chat-[\w-]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    const plain = await raw(script as string, { 'accept-encoding': 'identity' });
    expect(plain.status).toBe(200);
    expect(plain.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(plain.headers['content-type']).toMatch(/javascript/);
    for (const encoding of ['gzip', 'zstd']) {
      const compressed = await raw(script as string, { 'accept-encoding': encoding });
      expect(compressed.headers['content-encoding']).toBe(encoding);
      expect(compressed.headers.vary).toMatch(/Accept-Encoding/i);
      expect(compressed.bytes).toBeLessThan(plain.bytes / 2);
    }
    const gzip = await raw(script as string, { 'accept-encoding': 'gzip' });
    figures.chatScriptBytes = plain.bytes;
    figures.chatScriptGzipBytes = gzip.bytes;

    const ops = await fetch(`${stack.publicUrl}/ops`);
    expect(ops.status).toBe(200);
    expect(ops.headers.get('cache-control')).toBe('no-cache');
    expect(await ops.text()).toContain('Focus operations');

    // An asset that is not there (an old hash) is a 404, not an answer that could be cached as it.
    const missing = await fetch(`${stack.publicUrl}/assets/chat-00000000.js`);
    expect(missing.status).toBe(404);
    expect(missing.headers.get('cache-control')).toBe('no-store');

    // The API keeps its own CSP, and per-user answers are never stored.
    const health = await fetch(`${stack.publicUrl}/healthz`);
    expect(health.headers.get('content-security-policy')).toBe("default-src 'none'; frame-ancestors 'none'");
    const account = (await (await fetch(`${stack.publicUrl}/api/auth/device`, { method: 'POST' })).json()) as {
      token: string;
    };
    const me = await fetch(`${stack.publicUrl}/api/me`, { headers: { authorization: `Bearer ${account.token}` } });
    expect(me.status).toBe(200);
    expect(me.headers.get('cache-control')).toBe('no-store');
  });
});
