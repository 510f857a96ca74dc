import type { DeviceAccount } from '../../../backend/src/client/focus-chat-client';

/**
 * The device account of this browser: made on the first visit (POST
 * /api/auth/device through the client helper), its token kept in
 * localStorage until it expires or the person deletes their data.
 */
const KEY = 'focus.account';

export function storedAccount(storage: Storage = localStorage): DeviceAccount | undefined {
  try {
    const account = JSON.parse(storage.getItem(KEY) ?? 'null') as DeviceAccount | null;
    if (!account?.token || Date.parse(account.expiresAt) <= Date.now() + 60_000) {
      return undefined;
    }
    return account;
  } catch {
    return undefined;
  }
}

export function storeAccount(account: DeviceAccount, storage: Storage = localStorage): void {
  storage.setItem(KEY, JSON.stringify(account));
}

export function forgetAccount(storage: Storage = localStorage): void {
  storage.removeItem(KEY);
}

/** DELETE /api/me: 204 and nothing remains; a token already refused (401) has nothing left to delete either. */
export async function deleteAccount(token: string): Promise<void> {
  const response = await fetch('/api/me', { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });
  if (response.status === 204 || response.status === 401) {
    return;
  }
  const body = (await response.json().catch(() => undefined)) as { error?: { message?: string } } | undefined;
  throw new Error(body?.error?.message ?? `The server answered ${response.status}.`);
}
