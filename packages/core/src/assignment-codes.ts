/**
 * The codes an anchor assignment uses besides a ground-truth index (torchvision's `Matcher`
 * values). The assigners write them and the detection loss reads them, so both take them from here.
 */

/** `gtIndex` / `labels` value of an anchor that trains as background (torchvision `Matcher.BELOW_LOW_THRESHOLD`). */
export const BACKGROUND = -1;
/** `gtIndex` / `labels` value of an anchor that takes no part in the classification loss (`Matcher.BETWEEN_THRESHOLDS`). */
export const IGNORE = -2;
