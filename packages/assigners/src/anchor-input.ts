import type { AnchorConfig, Anchors } from '@bmc/core';

/** The anchor fields of an {@link AssignInput} from `@bmc/core`'s `generateAnchors` output and its config. */
export function anchorFields(
  anchors: Anchors,
  config: AnchorConfig,
): { anchors: Float32Array; levelCounts: Int32Array; levelStrides: number[] } {
  return {
    anchors: anchors.boxes,
    levelCounts: anchors.levelCounts,
    levelStrides: config.levels.map((l) => l.stride),
  };
}
