"""The README's first hour in a real browser: ``make run`` on an empty data dir to a trained model (issue 15).

No manual setting anywhere: sign up, import, connect the README's model server, retrieve predictions,
switch retraining on, label three images, and the run and the re-predicted tasks are there, with no
console error. Then an image deleted from the uploads: "Retrieve Predictions" says which task got none
and why. The walk itself, and what "newcomer" means for the environment: ``tests/browser/readme_walk.py``.
"""

import pytest
from playwright.sync_api import sync_playwright

from tests.browser import readme_walk

pytestmark = [pytest.mark.browser, pytest.mark.ml]


def test_the_readme_from_make_run_to_a_trained_model_and_refreshed_uncertainty(tmp_path):
    pytest.importorskip('mmdet', reason='the README model server needs MMDetection (scripts/install-ml.sh)')
    with sync_playwright() as playwright:
        hour = readme_walk.walk(playwright, tmp_path)
    details = f'{hour.marks}\n{hour.logs["model server"][-3000:]}\n{hour.logs["make run"][-3000:]}'

    assert hour.record.external_requests == []
    # the untrained model's predictions reached the Data Manager: every task shows the served version
    served = hour.backend['model_version']
    assert [row['Model version'] for row in hour.grid_after_predictions] == [served] * readme_walk.IMAGES

    # the threshold's run trained on the three labelled images and the page reads as values
    training = [run for run in hour.runs if not (run.get('metrics') or {}).get('predict_only')]
    assert training[0]['status'] == 'succeeded' and training[0]['annotations_used'] == readme_walk.ANNOTATED, training
    assert training[0]['version_before'] == served and training[0]['version_after'] != served, training
    assert f'Images\n{readme_walk.ANNOTATED} trained on' in hour.run_text, hour.run_text
    assert 'Model server: ' in hour.run_text and 'mAP needs at least 10' in hour.run_text, hour.run_text
    assert '{' not in hour.run_text, hour.run_text  # values, not JSON

    # the re-predicted tasks carry the new version and an uncertainty computed from it
    new = training[0]['version_after']
    repredicted = [row for row in hour.grid_after_training if row['Model version'] == new]
    assert len(repredicted) == readme_walk.IMAGES - readme_walk.ANNOTATED, hour.grid_after_training
    for row in repredicted:
        assert 0.0 <= float(row['Uncertainty']) <= 1.0, row

    # not one console error on the way (ours or Label Studio's)
    assert hour.console[: hour.errors_before_missing_image] == [], details

    # the image deleted from the uploads: the Data Manager shows which task got no prediction, and why
    assert hour.missing_image_status == 422
    toast = hour.missing_image_toast
    covered = f'{readme_walk.IMAGES - 1} of {readme_walk.IMAGES} tasks have a prediction of the served model'
    assert f'{covered} ({new}); 1 got none: task {hour.missing_task}.' in toast, toast
    # the model server's reason; Label Studio itself answers its read of the deleted file with a 500
    assert f'Task {hour.missing_task}: cannot read /data/upload/' in toast and 'from Label Studio' in toast, toast
    after = hour.console[hour.errors_before_missing_image :]
    ours = [entry for entry in after if '/data/upload/' not in entry[2]]  # the deleted file's thumbnail: a 500
    assert [(text, url.split('?')[0]) for _, text, url in ours] == [
        (
            'Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)',
            f'{hour.base}/api/dm/actions',
        )
    ], after
