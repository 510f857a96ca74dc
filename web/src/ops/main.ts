import { LiveChart } from './charts';

/**
 * The operations page: asks for ADMIN_TOKEN (kept in sessionStorage), then
 * every 2 s reads /ops/api/dashboard and /ops/api/stats (Caddy maps them to
 * the instances' /dashboard and /api/chat/stats, token passed through) and
 * shows the cluster-wide figures, five rolling charts and which instances answered.
 */

interface Dashboard {
  activeUsers: number;
  requestsPerMinute: number;
  p50ResponseTime: number;
  p95ResponseTime: number;
  cacheHitRate: number;
  errorRate: number;
  upstream?: {
    tokensLastMinute: number;
    quota: { tokensPerMinute: number; tokensUsedShare: number } | null;
  };
  instance?: string;
}

interface Stats {
  queue?: { waiting?: number; active?: number; delayed?: number };
  instance?: string;
}

const TOKEN_KEY = 'focus.adminToken';
const POLL_MS = 2000;
/** Five minutes of samples. */
const WINDOW = 150;
const WINDOW_SECONDS = (WINDOW * POLL_MS) / 1000;

function byId<T extends HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) {
    throw new Error(`#${id} is missing from the page`);
  }
  return element as T;
}

const login = byId<HTMLFormElement>('login');
const tokenInput = byId<HTMLInputElement>('token');
const loginError = byId<HTMLParagraphElement>('login-error');
const board = byId<HTMLDivElement>('board');
const boardError = byId<HTMLParagraphElement>('board-error');
const updated = byId<HTMLSpanElement>('updated');
const signOut = byId<HTMLButtonElement>('sign-out');
const instancesBody = byId<HTMLTableSectionElement>('instances');

const number = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const percent = (share: number) => `${decimal.format(share * 100)} %`;

class Unauthorized extends Error {}

async function read<T>(path: string, token: string): Promise<{ body: T; instance: string }> {
  const response = await fetch(path, { headers: { authorization: `Bearer ${token}` }, cache: 'no-store' });
  if (response.status === 401) {
    throw new Unauthorized();
  }
  const body = (await response.json().catch(() => undefined)) as (T & { error?: { message?: string } }) | undefined;
  if (!response.ok || !body) {
    throw new Error(body?.error?.message ?? `${path} answered ${response.status}.`);
  }
  const instance = response.headers.get('x-instance-id') ?? (body as { instance?: string }).instance ?? 'unknown';
  return { body, instance };
}

let charts: Record<'traffic' | 'latency' | 'rates' | 'tokens' | 'queue', LiveChart> | undefined;
function ensureCharts() {
  charts ??= {
    traffic: new LiveChart(
      byId('chart-traffic'),
      [
        { label: 'active users', color: '--chart-1' },
        { label: 'requests/min', color: '--chart-2' },
      ],
      WINDOW,
      WINDOW_SECONDS,
    ),
    latency: new LiveChart(
      byId('chart-latency'),
      [
        { label: 'p50 ms', color: '--chart-1' },
        { label: 'p95 ms', color: '--chart-2' },
      ],
      WINDOW,
      WINDOW_SECONDS,
    ),
    rates: new LiveChart(
      byId('chart-rates'),
      [
        { label: 'cache hit %', color: '--chart-1' },
        { label: 'error %', color: '--chart-2' },
      ],
      WINDOW,
      WINDOW_SECONDS,
    ),
    tokens: new LiveChart(
      byId('chart-tokens'),
      [
        { label: 'tokens/min', color: '--chart-1' },
        { label: 'quota', color: '--chart-2', dash: [6, 4] },
      ],
      WINDOW,
      WINDOW_SECONDS,
    ),
    queue: new LiveChart(
      byId('chart-queue'),
      [
        { label: 'waiting', color: '--chart-1' },
        { label: 'active', color: '--chart-3' },
      ],
      WINDOW,
      WINDOW_SECONDS,
    ),
  };
  return charts;
}

const answered = new Map<string, { count: number; last: Date }>();
function tally(instance: string): void {
  const entry = answered.get(instance) ?? { count: 0, last: new Date() };
  entry.count += 1;
  entry.last = new Date();
  answered.set(instance, entry);
}

function renderInstances(): void {
  const rows = [...answered.entries()]
    .sort(([a], [b]) => a.localeCompare(b, undefined, { numeric: true }))
    .map(([instance, { count, last }]) => {
      const row = document.createElement('tr');
      for (const text of [instance, number.format(count), last.toLocaleTimeString()]) {
        const cell = document.createElement('td');
        cell.textContent = text;
        row.append(cell);
      }
      return row;
    });
  instancesBody.replaceChildren(...rows);
}

function setText(id: string, text: string): void {
  byId(id).textContent = text;
}

function show(dashboard: Dashboard, stats: Stats): void {
  const queue = stats.queue ?? {};
  const waiting = (queue.waiting ?? 0) + (queue.delayed ?? 0);
  const active = queue.active ?? 0;
  const tokens = dashboard.upstream?.tokensLastMinute ?? 0;
  const quota = dashboard.upstream?.quota?.tokensPerMinute ?? null;
  setText('active-users', number.format(dashboard.activeUsers));
  setText('rpm', number.format(dashboard.requestsPerMinute));
  setText('p50', `${decimal.format(dashboard.p50ResponseTime)} ms`);
  setText('p95', `${decimal.format(dashboard.p95ResponseTime)} ms`);
  setText('hit-rate', percent(dashboard.cacheHitRate));
  setText('error-rate', percent(dashboard.errorRate));
  setText('tokens', quota ? `${number.format(tokens)} / ${number.format(quota)}` : `${number.format(tokens)} / –`);
  setText('queue', `${number.format(waiting)} · ${number.format(active)}`);
  const time = Date.now() / 1000;
  const all = ensureCharts();
  all.traffic.push(time, [dashboard.activeUsers, dashboard.requestsPerMinute]);
  all.latency.push(time, [dashboard.p50ResponseTime, dashboard.p95ResponseTime]);
  all.rates.push(time, [dashboard.cacheHitRate * 100, dashboard.errorRate * 100]);
  all.tokens.push(time, [tokens, quota]);
  all.queue.push(time, [waiting, active]);
  updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
}

let timer: number | undefined;

function stop(): void {
  if (timer !== undefined) {
    window.clearTimeout(timer);
    timer = undefined;
  }
}

function askForToken(message = ''): void {
  stop();
  board.hidden = true;
  signOut.hidden = true;
  login.hidden = false;
  loginError.textContent = message;
  tokenInput.focus();
}

async function poll(token: string): Promise<void> {
  try {
    const [dashboard, stats] = await Promise.all([
      read<Dashboard>('/ops/api/dashboard', token),
      read<Stats>('/ops/api/stats', token),
    ]);
    tally(dashboard.instance);
    tally(stats.instance);
    boardError.textContent = '';
    show(dashboard.body, stats.body);
    renderInstances();
  } catch (error) {
    if (error instanceof Unauthorized) {
      sessionStorage.removeItem(TOKEN_KEY);
      askForToken('That token was refused (401). Check ADMIN_TOKEN and try again.');
      return;
    }
    boardError.textContent = `Cannot read the figures: ${(error as Error).message}`;
  }
  if (!board.hidden) {
    timer = window.setTimeout(() => void poll(token), POLL_MS);
  }
}

function open(token: string): void {
  login.hidden = true;
  board.hidden = false;
  signOut.hidden = false;
  stop();
  void poll(token);
}

login.addEventListener('submit', (event) => {
  event.preventDefault();
  const token = tokenInput.value.trim();
  if (!token) {
    loginError.textContent = 'Enter the admin token first.';
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  tokenInput.value = '';
  open(token);
});

signOut.addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  askForToken();
});

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) {
  open(saved);
} else {
  askForToken();
}
document.documentElement.dataset.ready = 'true';
