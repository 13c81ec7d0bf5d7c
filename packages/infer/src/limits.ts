/**
 * The largest `--resize` (longer side in pixels) `bmc detect` accepts. An image resized to it
 * is tiled, so memory stays bounded, but time grows with the area: 8192 px is 64 tiles of
 * 1024 px (seconds to a minute on a CPU), while 100,000 px would be about 10,000 tiles.
 * Whole-slide images should be cut into fields before detection.
 */
export const MAX_RESIZE_LONG_SIDE = 8192;
