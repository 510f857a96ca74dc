import type { Authenticator } from '../auth/authenticator.js';
import type { DeviceTokens } from '../auth/device-tokens.js';
import type { UserStore } from '../db/user-store.js';
import { serviceUnavailable } from '../errors.js';
import type { CallerKeys, CallerRef } from '../redis/caller-key.js';
import type { DegradationTracker } from '../telemetry/degradation.js';

/**
 * Something that keeps data about a user (queued jobs, counters, cached
 * answers): it can show it for an export and delete it for good.
 */
export interface UserDataHolder {
  /** The name of its section in the export. */
  readonly name: string;
  export?(user: UserRef): Promise<unknown>;
  forget(user: UserRef): Promise<void>;
}

/** A signed-in user as the holders see them: the id, the caller id and its Redis name. */
export interface UserRef {
  userId: string;
  callerId: string;
  caller: CallerRef;
}

export interface Account {
  userId: string;
  createdAt: string;
  kind: 'device' | 'external';
}

export interface AccountService {
  signUp(): Promise<{ userId: string; token: string; expiresAt: string }>;
  account(userId: string): Promise<Account>;
  /** Everything stored about the user, one section per holder. */
  export(userId: string): Promise<Record<string, unknown>>;
  /** Deletes the account, then everything every holder keeps; the user's tokens stop working everywhere. */
  delete(userId: string): Promise<void>;
}

/** A user as the holders see them, named in Redis by `callerKeys`. */
export const userRef = (callerKeys: CallerKeys, userId: string): UserRef => {
  const callerId = `user:${userId}`;
  return { userId, callerId, caller: callerKeys.ref({ kind: 'user', id: callerId }) };
};

const UNAVAILABLE = 'Accounts are unavailable right now. Please try again shortly.';

interface AccountServiceOptions {
  users: UserStore;
  deviceTokens: DeviceTokens;
  authenticator: Authenticator;
  holders: readonly UserDataHolder[];
  tracker: DegradationTracker;
  callerKeys: CallerKeys;
}

export function createAccountService(options: AccountServiceOptions): AccountService {
  const { users, deviceTokens, tracker } = options;
  return {
    async signUp() {
      const user = await database(tracker, () => users.createDevice());
      const minted = await deviceTokens.mint({ userId: user.id, version: user.tokenVersion });
      return { userId: user.id, token: minted.token, expiresAt: minted.expiresAt.toISOString() };
    },
    account: (userId) => findAccount(users, tracker, userId),
    export: (userId) => exportUser(options, userId),
    delete: (userId) => deleteUser(options, userId),
  };
}

/** PostgreSQL trouble is a 503 with Retry-After, logged once per outage. */
async function database<T>(tracker: DegradationTracker, step: () => Promise<T>): Promise<T> {
  try {
    const value = await step();
    tracker.succeeded();
    return value;
  } catch (error) {
    tracker.failed(error);
    throw serviceUnavailable(UNAVAILABLE, 5);
  }
}

async function findAccount(users: UserStore, tracker: DegradationTracker, userId: string): Promise<Account> {
  const user = await database(tracker, () => users.find(userId));
  if (!user) {
    // Deleted between the token check and now: nothing to show.
    throw serviceUnavailable(UNAVAILABLE, 1);
  }
  return { userId: user.id, createdAt: user.createdAt.toISOString(), kind: user.kind };
}

async function exportUser(options: AccountServiceOptions, userId: string): Promise<Record<string, unknown>> {
  const user = userRef(options.callerKeys, userId);
  const sections: Record<string, unknown> = { account: await findAccount(options.users, options.tracker, userId) };
  for (const holder of options.holders) {
    if (holder.export) {
      sections[holder.name] = await holder.export(user);
    }
  }
  return sections;
}

async function deleteUser(options: AccountServiceOptions, userId: string): Promise<void> {
  const { users, tracker } = options;
  const identities = await database(tracker, () => users.externalIdentities(userId));
  // The account first: from then on no instance accepts the user's tokens (see the authenticator).
  await database(tracker, () => users.delete(userId));
  const user = userRef(options.callerKeys, userId);
  try {
    await options.authenticator.forget(userId, identities);
    for (const holder of options.holders) {
      await holder.forget(user);
    }
  } catch (error) {
    // Redis failed midway. The same DELETE with the same token finishes the job (each step is idempotent).
    tracker.failed(error);
    throw serviceUnavailable('Your data could not all be deleted yet. Please send the request again.', 5);
  }
}
