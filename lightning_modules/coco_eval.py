"""Box AP with pycocotools' COCOeval from a detector's outputs."""

from __future__ import annotations

import contextlib
import io

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

STAT_NAMES = ("bbox_AP", "bbox_AP50", "bbox_AP75", "bbox_APs", "bbox_APm", "bbox_APl")


def to_coco_results(image_ids, outputs, label_to_cat: dict[int, int]) -> list[dict]:
    """torchvision detector outputs (xyxy boxes, contiguous labels) -> COCO result entries."""
    results = []
    for image_id, out in zip(image_ids, outputs):
        boxes = out["boxes"].detach().cpu().numpy().astype(np.float64)
        boxes[:, 2:] -= boxes[:, :2]
        for box, score, label in zip(boxes, out["scores"].tolist(), out["labels"].tolist()):
            results.append(
                {
                    "image_id": int(image_id),
                    "category_id": label_to_cat[int(label)],
                    "bbox": [round(float(v), 3) for v in box],
                    "score": float(score),
                }
            )
    return results


def coco_box_ap(coco_gt: COCO, results: list[dict], image_ids: list[int] | None = None) -> dict[str, float]:
    """COCOeval bbox statistics (AP, AP50, AP75, APs/m/l); all zeros when nothing was detected."""
    if not results:
        return {name: 0.0 for name in STAT_NAMES}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(results)
        evaluator = COCOeval(coco_gt, coco_dt, "bbox")
        if image_ids is not None:
            evaluator.params.imgIds = sorted(set(image_ids))
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    # COCOeval reports -1 where a size range has no ground truth; report those as 0.
    return {name: max(0.0, float(v)) for name, v in zip(STAT_NAMES, evaluator.stats[:6])}
