import {
  type ChatReply,
  type ChatTurn,
  createFocusChatClient,
  type DeviceAccount,
  type FocusChatClient,
  FocusChatError,
} from '../../../backend/src/client/focus-chat-client';
import { deleteAccount, forgetAccount, storeAccount, storedAccount } from './account';
import { humanWait, pickLang, type Strings, stringsFor } from './i18n';
import { observedFetch } from './observed-fetch';
import { WaitIndicator } from './wait-indicator';

/**
 * The chat page: one input, the answer as it streams (or through the queue,
 * with the place in line), a device account made on the first visit, and
 * "delete my data". Every text goes in with textContent, never as HTML.
 */

/** Earlier turns sent with each message (the backend takes up to MAX_HISTORY_MESSAGES, 20). */
const HISTORY_TURNS = 6;

function byId<T extends HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) {
    throw new Error(`#${id} is missing from the page`);
  }
  return element as T;
}

const lang = pickLang(navigator.languages?.length ? navigator.languages : [navigator.language]);
const t: Strings = stringsFor(lang);
document.documentElement.lang = lang;
for (const element of document.querySelectorAll<HTMLElement>('[data-i18n]')) {
  const value = t[element.dataset.i18n as keyof Strings];
  if (typeof value === 'string') {
    element.textContent = value;
  }
}

const form = byId<HTMLFormElement>('composer');
const input = byId<HTMLTextAreaElement>('message');
const sendButton = byId<HTMLButtonElement>('send');
const turnsList = byId<HTMLOListElement>('turns');
const alertBox = byId<HTMLParagraphElement>('alert');
const live = byId<HTMLParagraphElement>('live');
const deleteOpen = byId<HTMLButtonElement>('delete-open');
const deleteDialog = byId<HTMLDialogElement>('delete-dialog');
const deleteCancel = byId<HTMLButtonElement>('delete-cancel');
const deleteConfirm = byId<HTMLButtonElement>('delete-confirm');
input.placeholder = t.placeholder;

const waiting = new WaitIndicator(byId('status-text'), byId('wait-progress'));

/** Said once to screen readers (the visible status line changes too often to be a live region). */
function announce(text: string): void {
  live.textContent = '';
  // A new node after a tick, so the same words are announced again.
  window.setTimeout(() => {
    live.textContent = text;
  }, 50);
}

function showAlert(text: string): void {
  alertBox.textContent = text;
}

let account: DeviceAccount | undefined = storedAccount();
let idempotencyKey = crypto.randomUUID();
let longWaitSeconds: number | undefined;
const history: ChatTurn[] = [];

const fetchForClient = observedFetch(window.fetch.bind(window), {
  countdown: (seconds, signal) => {
    announce(t.countdown(seconds));
    return waiting.countdown(seconds, t.countdown, t.retrying, signal);
  },
  longWait: (seconds) => {
    longWaitSeconds = seconds;
  },
  queued: (position, estimatedTime) => {
    announce(t.inLine(position, estimatedTime));
    waiting.queued(t.inLine(position, estimatedTime), estimatedTime);
  },
});

function newClient(): FocusChatClient {
  return createFocusChatClient({
    baseUrl: window.location.origin,
    token: account?.token,
    fetch: fetchForClient,
    // One key per message: every retry of it (ours after a countdown, the helper's) is the same request.
    newKey: () => idempotencyKey,
    // Our countdown (up to 20 s) runs inside one call of the helper.
    requestTimeoutMs: 30_000,
    // A refusal longer than this is said at once, with its wait, instead of a silent spinner.
    timeoutMs: 90_000,
  });
}
let client = newClient();

let signingIn: Promise<DeviceAccount> | undefined;
/** The device account, made once (on the first visit, or after a deletion or an expired token). */
function ensureAccount(): Promise<DeviceAccount> {
  if (account) {
    return Promise.resolve(account);
  }
  signingIn ??= client
    .signIn()
    .then((made) => {
      account = made;
      storeAccount(made);
      return made;
    })
    .finally(() => {
      signingIn = undefined;
    });
  return signingIn;
}

function addTurn(role: 'user' | 'assistant', text: string): { item: HTMLLIElement; body: HTMLParagraphElement } {
  const item = document.createElement('li');
  item.className = `turn ${role} fade-in`;
  const who = document.createElement('p');
  who.className = 'who';
  who.textContent = role === 'user' ? t.you : t.coach;
  const body = document.createElement('p');
  body.className = 'text';
  body.textContent = text;
  item.append(who, body);
  turnsList.append(item);
  item.scrollIntoView({ block: 'end' });
  return { item, body };
}

function telHref(phone: string): string {
  return `tel:${phone.replace(/[^\d+]/g, '')}`;
}

function showSafety(item: HTMLLIElement, safety: NonNullable<ChatReply['safety']>): void {
  const box = document.createElement('div');
  box.className = 'safety';
  const intro = document.createElement('p');
  intro.textContent = t.safetyIntro;
  const list = document.createElement('ul');
  for (const resource of safety.resources) {
    const entry = document.createElement('li');
    const name = document.createElement('strong');
    name.textContent = resource.name;
    entry.append(name);
    if (resource.phone) {
      const call = document.createElement('a');
      call.className = 'call';
      call.href = telHref(resource.phone);
      call.textContent = t.call(resource.phone);
      entry.append(call);
    }
    if (resource.text) {
      const text = document.createElement('span');
      text.textContent = resource.text;
      entry.append(text);
    }
    const link = document.createElement('a');
    link.href = resource.url;
    link.target = '_blank';
    link.rel = 'noopener noreferrer';
    link.textContent = `${t.website}: ${new URL(resource.url).hostname}`;
    entry.append(link);
    list.append(entry);
  }
  box.append(intro, list);
  item.append(box);
}

function explain(error: unknown): string {
  if (error instanceof FocusChatError) {
    // 'aborted': the browser went offline (below), so the helper's retries would only wait in vain.
    if (error.code === 'network_error' || error.code === 'timeout' || error.code === 'aborted') {
      return t.networkLost;
    }
    if (error.code === 'upstream_interrupted') {
      return t.cutOff;
    }
    if ((error.status === 429 || error.status === 503) && longWaitSeconds !== undefined) {
      return t.tooLong(humanWait(longWaitSeconds));
    }
    return t.failed(error.message);
  }
  // fetch's own TypeError: the network is gone.
  return t.networkLost;
}

let busy = false;
function setBusy(value: boolean): void {
  busy = value;
  sendButton.disabled = value;
  form.setAttribute('aria-busy', String(value));
}

async function ask(
  message: string,
  body: HTMLParagraphElement,
  item: HTMLLIElement,
  signal: AbortSignal,
): Promise<ChatReply> {
  let text = '';
  const run = () =>
    client.stream(message, {
      signal,
      history: history.slice(-HISTORY_TURNS),
      onDelta: (piece) => {
        if (text === '') {
          waiting.writing(t.writing);
        }
        text += piece;
        body.textContent = text;
      },
      onProgress: ({ state, position, estimatedTime }) => {
        waiting.queued(
          state === 'active' ? t.beingWritten(estimatedTime) : t.inLine(position, estimatedTime),
          estimatedTime,
        );
      },
    });
  item.setAttribute('aria-busy', 'true');
  try {
    return await run();
  } catch (error) {
    // An expired token, or an account deleted elsewhere: a new account, and the same message once more.
    if (error instanceof FocusChatError && error.code === 'invalid_token') {
      forgetAccount();
      account = undefined;
      client = newClient();
      await ensureAccount();
      text = '';
      return await run();
    }
    throw error;
  } finally {
    item.removeAttribute('aria-busy');
  }
}

async function send(): Promise<void> {
  if (busy) {
    return;
  }
  const message = input.value.trim();
  if (!message) {
    showAlert(t.empty);
    return;
  }
  if (!navigator.onLine) {
    showAlert(t.networkLost);
    return;
  }
  setBusy(true);
  showAlert('');
  const offline = new AbortController();
  const abortOnOffline = () => offline.abort();
  window.addEventListener('offline', abortOnOffline, { once: true });
  idempotencyKey = crypto.randomUUID();
  longWaitSeconds = undefined;
  const question = addTurn('user', message);
  const answer = addTurn('assistant', '');
  answer.item.setAttribute('aria-busy', 'true');
  input.value = '';
  waiting.thinking(t.thinking);
  try {
    await ensureAccount();
    const reply = await ask(message, answer.body, answer.item, offline.signal);
    answer.body.textContent = reply.response;
    if (reply.safety) {
      showSafety(answer.item, reply.safety);
    }
    history.push({ role: 'user', content: message }, { role: 'assistant', content: reply.response });
    waiting.clear();
    announce(`${t.answered} ${reply.response}`);
  } catch (error) {
    waiting.clear();
    question.item.remove();
    answer.item.remove();
    // Nothing typed is lost: the message goes back (unless something new was typed meanwhile).
    if (input.value.trim() === '') {
      input.value = message;
    }
    showAlert(explain(error));
  } finally {
    window.removeEventListener('offline', abortOnOffline);
    setBusy(false);
    input.focus();
  }
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  void send();
});

input.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    void send();
  }
});

deleteOpen.addEventListener('click', () => {
  deleteDialog.showModal();
});
deleteCancel.addEventListener('click', () => {
  deleteDialog.close();
});
deleteDialog.addEventListener('close', () => {
  deleteOpen.focus();
});
deleteConfirm.addEventListener('click', () => {
  void (async () => {
    deleteConfirm.disabled = true;
    try {
      const current = account;
      if (!current) {
        showAlert(t.nothingToDelete);
      } else {
        await deleteAccount(current.token);
        forgetAccount();
        account = undefined;
        client = newClient();
        history.length = 0;
        turnsList.replaceChildren();
        showAlert('');
        announce(t.deleted);
        waiting.note(t.deleted);
      }
      deleteDialog.close();
    } catch (error) {
      deleteDialog.close();
      showAlert(t.deleteFailed((error as Error).message));
    } finally {
      deleteConfirm.disabled = false;
    }
  })();
});

input.disabled = false;
sendButton.disabled = false;
input.focus();
// The first visit makes the device account now, so the first answer does not wait for it.
void ensureAccount().catch(() => {
  showAlert(t.signInFailed);
});
performance.mark('focus-ready');
document.documentElement.dataset.ready = 'true';
