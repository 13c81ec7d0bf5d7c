/**
 * Indices of the `k` smallest `key(i)` for `i` in `[start, end)`, ascending by
 * key; equal keys keep the lower index first (deterministic where torch's
 * `topk` leaves ties unspecified). A bounded insertion list: O(n k) worst
 * case but O(n) in practice, since most keys lose against the current k-th.
 */
export function smallestK(start: number, end: number, k: number, key: (i: number) => number): Int32Array {
  const cap = Math.max(0, Math.min(k, end - start));
  const idx = new Int32Array(cap);
  const val = new Float64Array(cap);
  let size = 0;
  for (let i = start; i < end; i++) {
    const v = key(i);
    if (size === cap) {
      if (cap === 0 || !(v < val[cap - 1]!)) continue;
      size--;
    }
    let p = size;
    while (p > 0 && val[p - 1]! > v) {
      val[p] = val[p - 1]!;
      idx[p] = idx[p - 1]!;
      p--;
    }
    val[p] = v;
    idx[p] = i;
    size++;
  }
  return idx.subarray(0, size);
}

/** Like {@link smallestK} over an explicit index list: the `k` entries of `indices` with the smallest key. */
export function smallestKOf(indices: ArrayLike<number>, k: number, key: (i: number) => number): Int32Array {
  const picked = smallestK(0, indices.length, k, (r) => key(indices[r]!));
  return picked.map((r) => indices[r]!);
}
