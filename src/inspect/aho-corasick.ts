// A multi-pattern matcher over bytes (Aho-Corasick, compiled to a dense automaton).
//
// Why a compiled automaton: every request passes every pattern of every rule, and the cost of a
// scan must not grow with the number of patterns. The automaton reads each input byte once with
// one table lookup, whatever the patterns are. Its whole state between two pieces of input is one
// integer, so a pattern split across two TCP segments or two body chunks is found with no
// buffering at all (bounded memory: a stream costs 4 bytes per direction).
//
// The table is `states x classes`: bytes that occur in no pattern share class 0, so the table is
// as wide as the patterns' alphabet, not 256. Case-insensitive automata fold ASCII A-Z to a-z on
// both sides (patterns and input); other bytes match exactly. Strings are read as Node reads
// HTTP heads (one code unit per byte, latin1): a code unit above 255 is a byte of no pattern.

/** Receives the index of each pattern that ends at the byte just read. */
export type MatchSink = (pattern: number) => void;

/** Limits that keep a compiled automaton small whatever the config says. */
export const AUTOMATON_LIMITS = {
  /** Bytes of all patterns of one automaton together (the number of states is at most this + 1). */
  maxTotalBytes: 16 * 1024,
  /** Bytes of one pattern. */
  maxPatternBytes: 256,
} as const;

export class AhoCorasick {
  /** The state before any input (and after input that leaves no pattern begun). */
  readonly start = 0;
  readonly patternCount: number;
  private readonly classOf: Uint8Array;
  private readonly width: number;
  /**
   * The transitions, indexed by `row + class` where a state's row is `state * width`; each cell
   * holds the next state's row shifted left by one, its low bit set when a pattern ends there:
   * one load, one shift and one test per byte.
   */
  private readonly next: Int32Array;
  /** Per state: 1 when some pattern ends there. */
  private readonly accepts: Uint8Array;
  private readonly outStart: Int32Array;
  private readonly outList: Int32Array;

  constructor(patterns: readonly Uint8Array[], options: { caseInsensitive: boolean }) {
    this.patternCount = patterns.length;
    let total = 0;
    for (const p of patterns) {
      if (p.length === 0) throw new RangeError('an empty pattern matches everything');
      if (p.length > AUTOMATON_LIMITS.maxPatternBytes) throw new RangeError(`a pattern is longer than ${AUTOMATON_LIMITS.maxPatternBytes} bytes`);
      total += p.length;
    }
    if (total > AUTOMATON_LIMITS.maxTotalBytes) throw new RangeError(`patterns add up to ${total} bytes, more than ${AUTOMATON_LIMITS.maxTotalBytes}`);
    const fold = (b: number) => (options.caseInsensitive && b >= 0x41 && b <= 0x5a ? b | 0x20 : b);

    // Byte classes: one per distinct (folded) byte of the patterns, 0 for every other byte.
    const classOf = new Uint8Array(256);
    let width = 1;
    const classOfFolded = new Int16Array(256).fill(-1);
    for (const p of patterns) {
      for (const b of p) {
        const f = fold(b);
        if (classOfFolded[f] === -1) classOfFolded[f] = width++;
      }
    }
    for (let b = 0; b < 256; b++) classOf[b] = Math.max(0, classOfFolded[fold(b)]);
    // 255 distinct bytes plus class 0 fits a Uint8Array; the 256th byte would overflow it.
    if (width > 256) throw new RangeError('patterns use every byte value');
    this.classOf = classOf;
    this.width = width;

    // The trie, as goto[state * width + class] (-1: no edge yet).
    const goto: number[] = new Array<number>(width).fill(-1);
    const outputs: number[][] = [[]];
    let states = 1;
    patterns.forEach((p, index) => {
      let s = 0;
      for (const b of p) {
        const c = classOf[b];
        let t = goto[s * width + c];
        if (t === -1) {
          t = states++;
          for (let i = 0; i < width; i++) goto.push(-1);
          outputs.push([]);
          goto[s * width + c] = t;
        }
        s = t;
      }
      outputs[s].push(index);
    });

    // Breadth first: each state's failure link, its outputs joined with its failure's, and the
    // missing edges filled in from the failure state (a DFA: no failure chasing at scan time).
    const next = new Int32Array(states * width);
    const fail = new Int32Array(states);
    const queue = new Int32Array(states);
    let head = 0;
    let tail = 0;
    for (let c = 0; c < width; c++) {
      const t = goto[c];
      if (t === -1 || c === 0) {
        next[c] = 0;
      } else {
        next[c] = t;
        fail[t] = 0;
        queue[tail++] = t;
      }
    }
    while (head < tail) {
      const s = queue[head++];
      const f = fail[s];
      if (outputs[f].length > 0) outputs[s] = outputs[s].concat(outputs[f]);
      for (let c = 0; c < width; c++) {
        const t = c === 0 ? -1 : goto[s * width + c];
        if (t === -1) {
          next[s * width + c] = next[f * width + c];
        } else {
          next[s * width + c] = t;
          fail[t] = next[f * width + c];
          queue[tail++] = t;
        }
      }
    }
    this.accepts = new Uint8Array(states);
    this.outStart = new Int32Array(states + 1);
    const list: number[] = [];
    for (let s = 0; s < states; s++) {
      this.outStart[s] = list.length;
      if (outputs[s].length > 0) this.accepts[s] = 1;
      for (const o of outputs[s]) list.push(o);
    }
    this.outStart[states] = list.length;
    this.outList = Int32Array.from(list);
    const packed = new Int32Array(states * width);
    for (let i = 0; i < packed.length; i++) packed[i] = ((next[i] * width) << 1) | this.accepts[next[i]];
    this.next = packed;
  }

  /** States of the automaton (its table is this times the alphabet's width, in 4-byte cells). */
  get stateCount(): number {
    return this.accepts.length;
  }

  /**
   * Reads `bytes[from, to)` from `state` (start, or what the last scan returned); reports each
   * pattern that ends; returns the state after.
   */
  scanBytes(state: number, bytes: Uint8Array, sink: MatchSink, from = 0, to = bytes.length): number {
    const { classOf, next } = this;
    let row = state * this.width;
    for (let i = from; i < to; i++) {
      const v = next[row + classOf[bytes[i]]];
      row = v >>> 1;
      if ((v & 1) === 1) this.report(row, sink);
    }
    return row / this.width;
  }

  /** As scanBytes, over a string read one code unit per byte (latin1, as Node decodes HTTP heads). */
  scanString(state: number, text: string, sink: MatchSink): number {
    const { classOf, next } = this;
    let row = state * this.width;
    for (let i = 0; i < text.length; i++) {
      const u = text.charCodeAt(i);
      const v = next[row + (u < 256 ? classOf[u] : 0)];
      row = v >>> 1;
      if ((v & 1) === 1) this.report(row, sink);
    }
    return row / this.width;
  }

  private report(row: number, sink: MatchSink): void {
    const s = row / this.width;
    for (let i = this.outStart[s]; i < this.outStart[s + 1]; i++) sink(this.outList[i]);
  }
}
