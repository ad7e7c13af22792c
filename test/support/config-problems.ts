import assert from 'node:assert/strict';
import { ConfigError, parseConfig } from '../../src/config.js';

/** The problems `parseConfig` reports for `raw`; fails the test if it accepts it. */
export function problemsOf(raw: unknown): string[] {
  try {
    parseConfig(raw);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return [...err.problems];
  }
  assert.fail('expected a ConfigError');
}
