import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

function problemsOf(env: Record<string, string>): readonly string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) {
      return error.problems;
    }
    throw error;
  }
  throw new Error('expected a ConfigError');
}

const secretDir = mkdtempSync(join(tmpdir(), 'focus-config-'));
afterAll(() => rmSync(secretDir, { recursive: true, force: true }));

describe('loadConfig', () => {
  it('runs with no environment at all, on the documented defaults', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      HOST: '127.0.0.1',
      PORT: 3000,
      REDIS_URL: 'redis://127.0.0.1:6379',
      REDIS_PREFIX: 'focus:',
      GROQ_MODEL: 'llama-3.1-8b-instant',
      MAX_REQUESTS_PER_MINUTE: 60,
      CACHE_TTL_SECONDS: 7200,
      TRUSTED_PROXIES: 'loopback',
    });
    // No key: the bundled simulator answers, so no real Groq URL is invented.
    expect(config.GROQ_API_KEY).toBeUndefined();
    expect(config.GROQ_BASE_URL).toBeUndefined();
    expect(config.INSTANCE_ID).toMatch(/:3000$/);
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('defaults GROQ_BASE_URL to Groq once a key is set', () => {
    expect(loadConfig({ GROQ_API_KEY: 'gsk_x' }).GROQ_BASE_URL).toBe('https://api.groq.com');
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['PORT', '0x10'],
    ['PORT', '3000.5'],
    ['LOG_LEVEL', 'loud'],
    ['TRUSTED_PROXIES', 'localhost'],
    ['TRUSTED_PROXIES', '10.0.0.0/'],
    ['TRUSTED_PROXIES', '10.0.0.0/33'],
    ['REDIS_URL', 'http://127.0.0.1:6379'],
    ['REDIS_PREFIX', 'has space'],
    ['GROQ_BASE_URL', 'ftp://example.com'],
    ['GROQ_TIMEOUT_MS', '5'],
    ['GROQ_TEMPERATURE', '3'],
    ['MAX_REQUESTS_PER_MINUTE', '0'],
    ['MAX_REQUESTS_PER_MINUTE', '-5'],
    ['CACHE_TTL_SECONDS', 'forever'],
    ['MAX_MESSAGE_CHARS', '0'],
    ['MAX_HISTORY_MESSAGES', '1e3'],
    ['ALLOW_EMBEDDED_SIMULATOR', 'maybe'],
    // Sent as the X-Instance-Id header: Node refuses it there, and every request would be a 500.
    ['INSTANCE_ID', 'node\u26031'],
  ])('names %s when it is %j', (name, value) => {
    const problems = problemsOf({ [name]: value });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(new RegExp(`^${name}: `));
  });

  it('lists every bad variable at once, one line each', () => {
    const problems = problemsOf({
      PORT: 'abc',
      LOG_LEVEL: 'loud',
      REDIS_URL: 'nope',
      MAX_REQUESTS_PER_MINUTE: '0',
      GROQ_MODEL: 'llama-3.1-8b-instant',
    });
    expect(problems.map((line) => line.split(':')[0]).sort()).toEqual([
      'LOG_LEVEL',
      'MAX_REQUESTS_PER_MINUTE',
      'PORT',
      'REDIS_URL',
    ]);
    expect(problems.every((line) => !line.includes('\n'))).toBe(true);
  });

  it('treats empty and whitespace-only values as unset instead of as 0', () => {
    const config = loadConfig({ PORT: ' ', MAX_HISTORY_MESSAGES: '', GROQ_TEMPERATURE: '  ', INSTANCE_ID: ' ' });
    expect(config.PORT).toBe(3000);
    expect(config.MAX_HISTORY_MESSAGES).toBe(20);
    expect(config.GROQ_TEMPERATURE).toBe(0.6);
    expect(config.INSTANCE_ID).toMatch(/:3000$/);
  });

  it('accepts surrounding spaces around a number', () => {
    expect(loadConfig({ PORT: ' 8080 ' }).PORT).toBe(8080);
  });

  it('refuses to start without an upstream when the embedded simulator is not allowed', () => {
    expect(problemsOf({ ALLOW_EMBEDDED_SIMULATOR: 'false' })).toEqual([
      expect.stringMatching(/^GROQ_API_KEY: required when ALLOW_EMBEDDED_SIMULATOR=false/),
    ]);
    expect(loadConfig({ ALLOW_EMBEDDED_SIMULATOR: 'false', GROQ_API_KEY: 'gsk_x' }).GROQ_BASE_URL).toBe(
      'https://api.groq.com',
    );
    expect(loadConfig({ ALLOW_EMBEDDED_SIMULATOR: 'false', GROQ_BASE_URL: 'http://127.0.0.1:9' }).GROQ_API_KEY).toBe(
      undefined,
    );
  });

  it('reads GROQ_API_KEY from GROQ_API_KEY_FILE (a mounted secret), trimmed', () => {
    const file = join(secretDir, 'groq-key');
    writeFileSync(file, 'gsk_from_file\n');
    const config = loadConfig({ GROQ_API_KEY_FILE: file });
    expect(config.GROQ_API_KEY).toBe('gsk_from_file');
    expect(config.GROQ_BASE_URL).toBe('https://api.groq.com');
  });

  it('prefers GROQ_API_KEY over GROQ_API_KEY_FILE', () => {
    const file = join(secretDir, 'other-key');
    writeFileSync(file, 'gsk_from_file');
    expect(loadConfig({ GROQ_API_KEY: 'gsk_env', GROQ_API_KEY_FILE: file }).GROQ_API_KEY).toBe('gsk_env');
  });

  it('names GROQ_API_KEY_FILE when the file cannot be read', () => {
    const problems = problemsOf({ GROQ_API_KEY_FILE: join(secretDir, 'missing') });
    expect(problems).toEqual([expect.stringMatching(/^GROQ_API_KEY_FILE: cannot read .*missing \(ENOENT\)$/)]);
  });

  it('refuses an empty key file instead of silently answering from the simulator', () => {
    const file = join(secretDir, 'empty-key');
    writeFileSync(file, '\n');
    expect(problemsOf({ GROQ_API_KEY_FILE: file })).toEqual([expect.stringMatching(/^GROQ_API_KEY_FILE: .*empty/)]);
  });

  it('never prints the secret, even when the configuration is rejected', () => {
    const file = join(secretDir, 'secret-key');
    writeFileSync(file, 'gsk_file_secret_value');
    for (const env of [
      { GROQ_API_KEY: 'gsk_env_secret_value', PORT: 'abc', GROQ_BASE_URL: 'nope' },
      { GROQ_API_KEY_FILE: file, PORT: 'abc', GROQ_BASE_URL: 'nope' },
    ]) {
      let error: unknown;
      try {
        loadConfig(env);
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(ConfigError);
      const text = `${(error as ConfigError).message}\n${(error as ConfigError).problems.join('\n')}`;
      expect(text).toContain('PORT');
      expect(text).toContain('GROQ_BASE_URL');
      expect(text).not.toContain('secret_value');
    }
  });
});
