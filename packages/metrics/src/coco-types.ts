/** COCO ground-truth and results layouts as they appear in JSON files. Boxes are `[x, y, w, h]`. */

export interface CocoImage {
  id: number;
  width?: number;
  height?: number;
  file_name?: string;
}

export interface CocoAnnotation {
  id: number;
  image_id: number;
  category_id: number;
  /** `[x, y, w, h]`, top-left corner plus size, in pixels. */
  bbox: readonly number[];
  /** Used for the area ranges (pycocotools reads this field, not `w * h`); `w * h` when absent. */
  area?: number;
  iscrowd?: number | boolean;
}

export interface CocoCategory {
  id: number;
  name?: string;
  supercategory?: string;
}

export interface CocoGroundTruth {
  images: readonly CocoImage[];
  annotations: readonly CocoAnnotation[];
  categories: readonly CocoCategory[];
}

/** One entry of a COCO results file. */
export interface CocoDetection {
  image_id: number;
  category_id: number;
  /** `[x, y, w, h]`. Any `area` field is ignored: pycocotools recomputes it as `w * h`. */
  bbox: readonly number[];
  score: number;
}
