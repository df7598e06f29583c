import { describe, expect, it } from 'vitest';
import { ConfigError, defaultConfig, parseConfig } from '../../src/config.js';

describe('config: stats block', () => {
  it('defaults to a 5-s libvirt sample with raw 24 h, minutes 30 d, hours 1 y', () => {
    expect(defaultConfig().stats).toEqual({ intervalSec: 5, source: 'auto', rawRetentionHours: 24, minuteRetentionDays: 30, hourRetentionDays: 365 });
    expect(parseConfig({ stats: { intervalSec: 10, source: 'domstats' } }).stats).toMatchObject({ intervalSec: 10, source: 'domstats', rawRetentionHours: 24 });
  });

  it.each([
    [{ intervalSec: 7 }, 'stats.intervalSec', /divide 60/],
    [{ intervalSec: 0 }, 'stats.intervalSec', /whole number from 1 to 60/],
    [{ source: 'top' }, 'stats.source', /auto, libvirt, domstats, virt-top/],
    [{ rawRetentionHours: 0 }, 'stats.rawRetentionHours', /whole number/],
    [{ hourRetentionDays: 'forever' }, 'stats.hourRetentionDays', /whole number/],
    [{ retention: 1 }, 'stats.retention', /unknown key/],
  ])('names the bad key in %j', (stats, key, msg) => {
    try {
      parseConfig({ stats });
      throw new Error('expected ConfigError');
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      expect((e as ConfigError).key).toBe(key);
      expect((e as Error).message).toBe(`config: ${key}: ${(e as Error).message.split(': ').slice(2).join(': ')}`);
      expect((e as Error).message).toMatch(msg);
    }
  });

  it('refuses a stats block that is not a mapping', () => {
    expect(() => parseConfig({ stats: [1] })).toThrow(/stats: must be a mapping/);
  });
});
