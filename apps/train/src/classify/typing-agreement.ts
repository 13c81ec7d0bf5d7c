import { boxIou } from '@bmc/core';

export type Box = readonly [number, number, number, number];

/** A detected cell with the type the classifier called (or `unclassified`). */
export interface CalledCell {
  box: Box;
  score: number;
  type: string;
}

/** A cell whose type is known (drawn by the generator, or annotated). */
export interface KnownCell {
  box: Box;
  type: string;
}

export interface TypingAgreement {
  /** Known cells, all images. */
  known: number;
  /** Detected cells matched to a known cell (IoU >= the threshold). */
  matched: number;
  /** Matched cells the classifier gave a type (the rest were unclassified). */
  typed: number;
  /** Typed matched cells whose type is the known one. */
  agree: number;
  /** `confusion[known][called]` over matched cells (`called` may be `unclassified`). */
  confusion: Record<string, Record<string, number>>;
}

/**
 * How well the whole pipeline names cells, cell by cell: every detected cell is matched to at most
 * one known cell of its image (greedy in descending score, IoU >= `iou`, as COCO matches), and each
 * match compares the called type with the known one. What a differential count alone hides: two
 * errors in opposite directions leave the counts right.
 */
export function typingAgreement(
  images: readonly { called: readonly CalledCell[]; known: readonly KnownCell[] }[],
  iou = 0.5,
): TypingAgreement {
  const r: TypingAgreement = { known: 0, matched: 0, typed: 0, agree: 0, confusion: {} };
  for (const img of images) {
    r.known += img.known.length;
    if (img.called.length === 0 || img.known.length === 0) continue;
    const order = img.called.map((_, i) => i).sort((a, b) => img.called[b]!.score - img.called[a]!.score);
    const m = boxIou(
      Float32Array.from(order.flatMap((i) => [...img.called[i]!.box])),
      Float32Array.from(img.known.flatMap((k) => [...k.box])),
    );
    const taken = new Set<number>();
    order.forEach((ci, row) => {
      let best = -1;
      let bestIou = iou;
      for (let j = 0; j < m.cols; j++) {
        const v = m.data[row * m.cols + j]!;
        if (!taken.has(j) && v >= bestIou) {
          best = j;
          bestIou = v;
        }
      }
      if (best < 0) return;
      taken.add(best);
      const truth = img.known[best]!.type;
      const called = img.called[ci]!.type;
      r.matched++;
      if (called !== 'unclassified') {
        r.typed++;
        if (called === truth) r.agree++;
      }
      r.confusion[truth] ??= {};
      r.confusion[truth]![called] = (r.confusion[truth]![called] ?? 0) + 1;
    });
  }
  return r;
}
