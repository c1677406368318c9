"""An annotator opening a pre-annotated video sees our few keyframes drawn as the tracks, by Label Studio itself.

The model server's reducer (`track_keyframes.track_region`, what `/predict` answers for a video) turns the
true boxes of a synthetic fish video (tests/ml_backend/fish_videos.py) into `videorectangle` regions; one
track gets a gap, which becomes a hidden span. The prediction is stored through Label Studio's API and the
task opened in Chromium: Label Studio's labeling UI loads it as the annotator's draft, and its own code
(`region.getShape(frame)`, `region.isInLifespan(frame)` of the loaded regions) says what it draws on every
frame. That must be what our engine of its rule says (`expand_sequence`), and within IoU 0.9 of the box
the track was made from, on every frame the track has one.
"""

import numpy as np
import pytest
from playwright.sync_api import sync_playwright

from ls_extensions.video.geometry import iou_xyxy
from ls_extensions.video.interpolation import expand_sequence
from ls_extensions.video.track_keyframes import track_region
from tests.browser.test_video_export_dialog import api
from tests.browser.walk import signed_in
from tests.ml_backend import fish_videos
from tests.support.server import LabelStudioServer

pytestmark = pytest.mark.browser

FRAMES = 75
GAP = range(30, 45)  # the crab is not detected on these frames: a hidden span

# what the labeling UI draws of each region of the annotator's draft, frame by frame (its own code)
DRAWN = """
([frames]) => window.Htx.annotationStore.selected.regions.map(region => ({
  id: region.cleanId,
  labels: region.labeling ? region.labeling.selectedLabels.map(label => label.value) : [],
  keyframes: region.sequence.length,
  shapes: Array.from({length: frames}, (_, i) => {
    if (!region.isInLifespan(i + 1)) return null;
    const shape = region.getShape(i + 1);
    return shape ? [shape.x, shape.y, shape.width, shape.height] : null;
  }),
}))
"""


def predicted_regions(objects):
    """The regions `/predict` would answer for tracks on the true boxes: {label: (region, {frame: xyxy})}."""
    found = {}
    for index, (label, xyxy) in enumerate(fish_videos.true_boxes(objects, FRAMES)):
        frames = np.arange(1, FRAMES + 1)
        if label == 'crab':
            keep = ~np.isin(frames, GAP)
            frames, xyxy = frames[keep], xyxy[keep]
        region = track_region(
            frames,
            xyxy,
            fish_videos.WIDTH,
            fish_videos.HEIGHT,
            FRAMES,
            fps=fish_videos.FPS,
            label=label,
            region_id=f'track{index}',
            from_name='box',
            to_name='video',
            scores=np.full(len(frames), 0.8),
        )
        found[f'{label}{index}'] = (region, dict(zip(frames.tolist(), xyxy, strict=True)))
    return found


def test_the_labeling_ui_draws_the_predicted_keyframes_as_our_engine_does_within_the_tracks(tmp_path, template_db):
    objects = fish_videos.write_video(tmp_path / 'fish.mp4', FRAMES, seed=3)
    tracks = predicted_regions(objects)
    with LabelStudioServer(tmp_path / 'data', template_db) as server, sync_playwright() as pw:
        browser, page, record = signed_in(pw, server.url, 'tracks@example.org')
        base = server.url
        pid = api(page, 'POST', f'{base}/api/projects', data={'title': 'Fish', 'label_config': fish_videos.CONFIG})[
            'id'
        ]
        upload = {'file': {'name': 'fish.mp4', 'mimeType': 'video/mp4', 'buffer': (tmp_path / 'fish.mp4').read_bytes()}}
        api(page, 'POST', f'{base}/api/projects/{pid}/import', multipart=upload)
        (task,) = api(page, 'GET', f'{base}/api/tasks?project={pid}')['tasks']
        regions = [region for region, _ in tracks.values()]
        prediction = {'task': task['id'], 'result': regions, 'score': 0.8, 'model_version': 'tracks.v1'}
        api(page, 'POST', f'{base}/api/predictions', data=prediction)

        page.goto(f'{base}/projects/{pid}/data?task={task["id"]}', wait_until='domcontentloaded')
        page.wait_for_function(
            '(n) => { const s = window.Htx && window.Htx.annotationStore;'
            ' return s && s.selected && s.selected.regions.length === n }',
            arg=len(regions),
            timeout=60_000,
        )
        drawn = page.evaluate(DRAWN, [FRAMES])
        browser.close()
    assert record.external_requests == []
    sent = sorted((region['value']['labels'], len(region['value']['sequence'])) for region in regions)
    assert sorted((d['labels'], d['keyframes']) for d in drawn) == sent
    assert all(len(region['value']['sequence']) <= 8 for region in regions)  # a few keyframes for 75 frames
    for region, boxes in tracks.values():
        ours = expand_sequence(region['value']['sequence'], FRAMES)
        (shown,) = [d for d in drawn if d['id'] == region['id']]
        engine = {
            f: (x, y, w, h)
            for f, x, y, w, h in zip(ours.frame.tolist(), ours.x, ours.y, ours.width, ours.height, strict=True)
        }
        ui = {f: shape for f, shape in enumerate(shown['shapes'], start=1) if shape is not None}
        assert set(ui) == set(engine), region['id']  # the same frames shown (the gap hidden)
        for frame, (x, y, w, h) in engine.items():
            assert ui[frame] == pytest.approx([x, y, w, h], abs=1e-6), (region['id'], frame)
        for frame, box in boxes.items():  # every frame of the track: the drawn box within IoU 0.9
            x, y, w, h = (
                v / 100 * size for v, size in zip(ui[frame], [fish_videos.WIDTH, fish_videos.HEIGHT] * 2, strict=True)
            )
            assert iou_xyxy([x, y, x + w, y + h], box)[0] >= 0.9, (region['id'], frame)
    crab = next(region for region, _ in tracks.values() if region['value']['labels'] == ['crab'])
    assert not any(frame in GAP for frame in expand_sequence(crab['value']['sequence'], FRAMES).frame.tolist())
