"""Detection mAP at IoU 0.5 (VOC, all-point interpolation), pure NumPy, adapter-independent."""

import numpy as np


def iou(box, boxes):
    if len(boxes) == 0:
        return np.zeros(0)
    boxes = np.asarray(boxes, dtype=float)
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def average_precision(recall, precision):
    r = np.concatenate(([0.0], recall, [1.0]))
    p = np.concatenate(([0.0], precision, [0.0]))
    for i in range(len(p) - 2, -1, -1):
        p[i] = max(p[i], p[i + 1])
    idx = np.where(r[1:] != r[:-1])[0]
    return float(np.sum((r[idx + 1] - r[idx]) * p[idx + 1]))


def mean_average_precision(detections, ground_truth, num_classes, iou_threshold=0.5):
    """detections[i]: list of (x1, y1, x2, y2, class_index, score); ground_truth[i]: (boxes Nx4, labels N).

    Returns {'mAP': float, 'AP': {class_index: ap}} over the classes present in the ground truth.
    """
    aps = {}
    for c in range(num_classes):
        gts = {}
        npos = 0
        for i, (boxes, labels) in enumerate(ground_truth):
            sel = [b for b, lab in zip(boxes, labels, strict=True) if lab == c]
            gts[i] = (np.asarray(sel, dtype=float).reshape(-1, 4), np.zeros(len(sel), bool))
            npos += len(sel)
        if npos == 0:
            continue
        dets = [(d[5], i, d[:4]) for i, per in enumerate(detections) for d in per if d[4] == c]
        dets.sort(key=lambda t: -t[0])
        tp = np.zeros(len(dets))
        fp = np.zeros(len(dets))
        for k, (_, i, box) in enumerate(dets):
            gt_boxes, used = gts[i]
            overlaps = iou(box, gt_boxes)
            j = int(np.argmax(overlaps)) if len(overlaps) else -1
            if j >= 0 and overlaps[j] >= iou_threshold and not used[j]:
                tp[k] = 1
                used[j] = True
            else:
                fp[k] = 1
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        recall = tp / npos
        precision = tp / np.maximum(tp + fp, 1e-9)
        aps[c] = average_precision(recall, precision) if len(dets) else 0.0
    return {'mAP': float(np.mean(list(aps.values()))) if aps else 0.0, 'AP': aps}
