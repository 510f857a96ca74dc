import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

function problems(env: NodeJS.ProcessEnv): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) {
      return [...error.problems];
    }
    throw error;
  }
  return [];
}

describe('ADMIN_TOKEN and ACTIVE_USER_WINDOW_SECONDS', () => {
  it('leaves the stats pages open by default, with a five-minute active-user window', () => {
    const config = loadConfig({});
    expect(config.ADMIN_TOKEN).toBeUndefined();
    expect(config.ACTIVE_USER_WINDOW_SECONDS).toBe(300);
  });

  it('refuses a short token without printing it', () => {
    const found = problems({ ADMIN_TOKEN: 'letmein' });
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(/^ADMIN_TOKEN: .*16 characters/);
    expect(found[0]).not.toContain('letmein');
  });

  it('refuses a token with whitespace inside, which no Bearer header could carry', () => {
    const found = problems({ ADMIN_TOKEN: 'correct horse battery staple' });
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(/^ADMIN_TOKEN: .*whitespace/);
    expect(found[0]).not.toContain('horse');
  });

  it('reads the token from ADMIN_TOKEN_FILE (a mounted secret)', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'focus-admin-')), 'token');
    writeFileSync(file, 'a-long-enough-admin-token\n');
    expect(loadConfig({ ADMIN_TOKEN_FILE: file }).ADMIN_TOKEN).toBe('a-long-enough-admin-token');
  });

  it('refuses an active-user window under 10 s', () => {
    expect(problems({ ACTIVE_USER_WINDOW_SECONDS: '5' })[0]).toMatch(/^ACTIVE_USER_WINDOW_SECONDS: /);
  });
});
