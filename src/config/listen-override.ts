// `--listen name=address` on the command line, as read (load.ts applies it to a config). Apart
// from load.ts so that the command line can check the option without loading the config schema.

/** `--listen name=address` on the command line: replaces one listener's address (or unix path). */
export interface ListenOverride {
  listener: string;
  address: string;
}

export function parseListenOverride(text: string): ListenOverride {
  const eq = text.indexOf('=');
  if (eq <= 0 || eq === text.length - 1) throw new Error(`--listen expects NAME=ADDRESS (e.g. web=127.0.0.1:8081 or web=8081), got "${text}"`);
  return { listener: text.slice(0, eq), address: text.slice(eq + 1) };
}
