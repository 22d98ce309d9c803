// "Did you mean …?" for a mistyped command: the closest known name by edit distance, when it is close.

/** Levenshtein distance: insertions, deletions and substitutions, one each. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++)
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
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
