import { z } from 'zod';
import { parseDuration, parseSize } from './unit-text.ts';

// Human units in config files: durations like `10s` or `250ms`, sizes like `1MiB` or `64KiB`.
// A bare number is taken as milliseconds or bytes so that JSON configs written by programs work too.

// The parsers themselves are in unit-text.ts, which the command line loads without zod.
export { parseDuration, parseSize };

/**
 * The longest duration a config may give: 2^31-1 ms (about 24.8 days), the longest timer Node can
 * set. Node does not clamp a longer setTimeout: it warns (TimeoutOverflowWarning) and fires after
 * 1 ms, so a too-long idle timeout would close connections at once.
 *
 * It holds for every duration field, also those that are not timers themselves: a rate period
 * (`per`) over a longer span is the same rate over a shorter one (`rate: 3000, per: 720h` is
 * `rate: 100, per: 24h, burst: 3000`); a CORS `maxAge` is capped by browsers at a day or less; a
 * `presenceTtl` is refreshed by a timer every third of it, and weeks of ghost members help no one;
 * a static `revalidate` of weeks is the same as never. One limit for all is easier to know.
 */
export const MAX_DURATION_MS = 2_147_483_647;

/** A zod field for a duration; the parsed value is milliseconds, at most MAX_DURATION_MS. */
export const duration = () =>
  z.union([z.string(), z.number()]).transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `expected a duration like "10s", "250ms" or "2m", got ${JSON.stringify(v)}` });
      return z.NEVER;
    }
    if (ms > MAX_DURATION_MS) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a duration of at most ${MAX_DURATION_MS}ms (about 24.8 days, just over 596h: the longest timer Node can set), got ${JSON.stringify(v)}`,
      });
      return z.NEVER;
    }
    return ms;
  });

/** A zod field for a size; the parsed value is bytes. */
export const size = () =>
  z.union([z.string(), z.number()]).transform((v, ctx) => {
    const bytes = parseSize(v);
    if (bytes === undefined) {
      ctx.addIssue({ code: 'custom', message: `expected a size like "1MiB", "64KiB" or a number of bytes, got ${JSON.stringify(v)}` });
      return z.NEVER;
    }
    return bytes;
  });
