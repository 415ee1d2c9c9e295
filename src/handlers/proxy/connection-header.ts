// The Connection header of either direction (RFC 9110 §7.6.1): besides its standard options it
// may name other headers that are hop-by-hop for that message, which a proxy must drop with it.

/**
 * The header names (lower case) a Connection value lists besides `close`, `keep-alive` and
 * `upgrade`, or undefined when it lists none. Nearly every message has `keep-alive` or `close`
 * alone: those are answered without a split and a trim per token.
 */
export function connectionNamed(connection: string): Set<string> | undefined {
  if (connection.length <= 10) {
    const c = connection.toLowerCase();
    if (c === 'keep-alive' || c === 'close' || c === 'upgrade') return undefined;
  }
  let names: Set<string> | undefined;
  for (const token of connection.split(',')) {
    const t = token.trim().toLowerCase();
    if (t !== '' && t !== 'close' && t !== 'keep-alive' && t !== 'upgrade') (names ??= new Set()).add(t);
  }
  return names;
}
