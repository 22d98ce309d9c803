// "Did you mean …?" for a mistyped command: the closest known name by edit distance, when it is close.

/**
 * Edit distance (Levenshtein, with a swap of two neighbouring letters counting as one edit, as typing mistakes
 * go: "strat" is one edit from "start").
 */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  return d[a.length]![b.length]!;
}

/** The known name closest to `typed`, if within a third of its length (at least 1, at most 3 edits); or a prefix. */
export function closest(typed: string, known: readonly string[]): string | undefined {
  const t = typed.toLowerCase();
  const prefixed = known.filter((k) => t.length >= 2 && k.startsWith(t));
  if (prefixed.length === 1) return prefixed[0];
  const limit = Math.min(3, Math.max(1, Math.floor(t.length / 3)));
  let best: { name: string; d: number } | undefined;
  for (const k of known) {
    const d = editDistance(t, k);
    if (d <= limit && (!best || d < best.d)) best = { name: k, d };
  }
  return best?.name;
}

/** `; did you mean "x"?` or nothing. */
export function didYouMean(typed: string, known: readonly string[]): string {
  const c = closest(typed, known);
  return c ? `; did you mean "${c}"?` : "";
}
