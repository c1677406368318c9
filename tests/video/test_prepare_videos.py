"""prepare_videos: camera files re-encoded onto Label Studio's frame grid, or copied when they line up.

Every source frame carries its index (coloured blocks); after preparing, decoded frame ``f - 1`` of the
output must be the source frame a browser shows at UI frame ``f`` (tests/video/test_probe.py's
frame-by-frame browser model, on the source's timeline from its first frame).
"""

import csv
import io
import json
import logging
from dataclasses import asdict
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
from django.core.management import CommandError, call_command

from ls_extensions.video.conform import KEPT_EXISTING, output_names, prepare_existing_videos
from ls_extensions.video.frames import WRITTEN_COLOURS, probe
from ls_extensions.video.importer import import_videos, video_tags
from ls_extensions.video.probe import check_alignment
from tests.conftest import make_project
from tests.label_configs import VIDEO_TRACKING
from tests.video.camera_files import cfr_times, vfr_times, write_camera_file
from tests.video.test_prepare import codes
from tests.video.test_probe import lsf_seek, shown_by_browser

FPS = 25
SOURCES = {  # name -> (frame times, nominal frame duration, write_camera_file options)
    'good.mp4': (cfr_times(20, 25), Fraction(1, 25), {}),
    'vfr.mp4': (vfr_times(), Fraction(1, 25), {}),
    'late.mp4': (cfr_times(20, 25, start=Fraction(6, 5)), Fraction(1, 25), {}),
    'phone30.mp4': (cfr_times(30, 30), Fraction(1, 30), {'rate': 30}),
    'site/cam.ts': (cfr_times(12, 25, start=Fraction(7, 5)), Fraction(1, 25), {'container': 'mpegts'}),
}


def expected_frames(name, fps=FPS):
    """Source index shown at each UI frame of the output, by the frame-by-frame browser model."""
    times, duration, _ = SOURCES[name]
    relative = [float(t - times[0]) for t in times]
    length = round((relative[-1] + float(duration)) * fps)
    return [shown_by_browser(relative, lsf_seek(ui_frame, fps)) for ui_frame in range(1, length + 1)]


@pytest.fixture
def cameras(tmp_path):
    folder = tmp_path / 'cameras'
    for name, (times, _, options) in SOURCES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        write_camera_file(folder / name, times, **options)
    return folder


def by_source(records):
    return {record.source.rsplit('cameras/', 1)[-1]: record for record in records}


def test_prepare_reencodes_what_would_misalign(cameras, tmp_path):
    out = tmp_path / 'out'
    calls = []
    records = by_source(prepare_existing_videos([cameras], out, FPS, progress=lambda *a: calls.append(a)))

    assert {name: (r.video, r.status, r.action) for name, r in records.items()} == {
        'good.mp4': ('good.mp4', 'written', 'copied'),
        'vfr.mp4': ('vfr.mp4', 'written', 're-encoded'),
        'late.mp4': ('late.mp4', 'written', 're-encoded'),
        'phone30.mp4': ('phone30.mp4', 'written', 're-encoded'),
        'site/cam.ts': ('site__cam.mp4', 'written', 're-encoded'),
    }
    assert calls == [(i, 5) for i in range(1, 6)]
    assert (out / 'good.mp4').read_bytes() == (cameras / 'good.mp4').read_bytes()
    for name, record in records.items():
        expected = list(range(20)) if name == 'good.mp4' else expected_frames(name)
        assert codes(out / record.video) == expected, name  # decoded frame f-1 = what the UI showed at f
        facts, verdict = check_alignment(out / record.video, FPS)
        assert verdict.reasons == [] and verdict.misaligned_ui_frames == 0, name
        assert (record.frame_count, record.fps, record.width, record.height) == (len(expected), 25.0, 64, 48)
        if record.action == 're-encoded':
            assert (facts.codec, facts.first_timestamp, facts.colour) == ('h264', 0.0, asdict(WRITTEN_COLOURS))
            assert record.dropped_frames == record.source_frames - len(set(expected)), name
            assert record.duplicated_frames == sum(a == b for a, b in zip(expected, expected[1:], strict=False)), name
            assert record.misaligned_ui_frames > 0 and record.reasons[-1].startswith(
                f'{record.misaligned_ui_frames} of '
            )

    assert records['phone30.mp4'].reasons[0] == 'it plays at 30 fps, the project at 25 fps.'
    assert (records['phone30.mp4'].dropped_frames, records['phone30.mp4'].duplicated_frames) == (5, 0)
    assert records['vfr.mp4'].reasons[1].startswith('variable frame rate: 18 frame durations differ')
    assert records['vfr.mp4'].duplicated_frames > 0 and records['vfr.mp4'].dropped_frames > 0
    late = records['late.mp4']
    assert late.reasons[0].startswith('the first frame is at 1.200 s') and late.start_shift_frames == 30
    assert (late.dropped_frames, late.duplicated_frames) == (0, 0)
    assert records['site/cam.ts'].reasons[0] == 'h264 in a mpegts file does not play in common browsers.'
    assert records['good.mp4'].reasons == [] and records['good.mp4'].probe['header_frame_count'] == 20

    manifest = json.loads((out / 'manifest.json').read_text())
    assert {row['video']: row['action'] for row in manifest} == {r.video: r.action for r in records.values()}
    assert manifest == [
        asdict(records[name]) for name in ('good.mp4', 'late.mp4', 'phone30.mp4', 'vfr.mp4', 'site/cam.ts')
    ]
    with open(out / 'manifest.csv', newline='') as handle:
        rows = {row['video']: row for row in csv.DictReader(handle)}
    assert rows['vfr.mp4']['probe.variable_frame_rate'] == 'True'
    assert rows['late.mp4']['probe.first_timestamp'] == '1.2'
    assert rows['phone30.mp4']['dropped_frames'] == '5'
    assert rows['site__cam.mp4']['probe.container'] == 'mpegts'
    assert rows['vfr.mp4']['reasons'] == ' | '.join(records['vfr.mp4'].reasons)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ['good.mp4', 'late.mp4', 'phone30.mp4', 'site__cam.mp4', 'vfr.mp4', 'manifest.csv', 'manifest.json']
    )


def test_other_project_frame_rate(cameras, tmp_path):
    (record,) = prepare_existing_videos([cameras / 'phone30.mp4'], tmp_path / 'out', 30)
    assert (record.action, record.reasons) == ('copied', [])
    (record,) = prepare_existing_videos([cameras / 'good.mp4'], tmp_path / 'out30', Fraction(30000, 1001))
    assert record.action == 're-encoded' and record.reasons[0] == 'it plays at 25 fps, the project at 29.97 fps.'
    times = [float(t) for t in SOURCES['good.mp4'][0]]
    expected = [shown_by_browser(times, lsf_seek(f, 30000 / 1001)) for f in range(1, round(0.8 * 30000 / 1001) + 1)]
    assert codes(tmp_path / 'out30/good.mp4') == expected
    assert probe(tmp_path / 'out30/good.mp4').fps == pytest.approx(29.97, abs=0.001)


def test_output_names_are_unique():
    assert output_names(['site/cam', 'good'], ['/a/site/cam.mp4', '/a/good.mp4']) == ['site__cam', 'good']
    sources = ['/a/good.mp4', '/a/good.MOV', '/b/Good.mp4']  # same stem in one folder, and in another
    names = output_names(['good', 'good', 'Good'], sources)
    assert len({name.casefold() for name in names}) == 3 and all(n.casefold().startswith('good-') for n in names)
    assert output_names(['Good', 'good'], sources[:0:-1]) == names[:0:-1]  # depends on the source, not the order


def test_timestamps_spanning_too_many_frames_are_refused_before_encoding(cameras, tmp_path):
    (record,) = prepare_existing_videos([cameras / 'vfr.mp4'], tmp_path / 'out', FPS, frame_limit=50)
    assert (record.status, record.action) == ('failed', 'refused')
    assert record.error == f'{cameras}/vfr.mp4: its timestamps span 2 s, 52 frames, over 50'
    assert not (tmp_path / 'out/vfr.mp4').exists()


def test_rerun_keeps_outputs_and_overwrite_redoes(cameras, tmp_path):
    out = tmp_path / 'out'
    first = by_source(prepare_existing_videos([cameras / 'vfr.mp4', cameras / 'good.mp4'], out, FPS))
    before = (out / 'vfr.mp4').read_bytes()
    again = by_source(prepare_existing_videos([cameras / 'vfr.mp4', cameras / 'good.mp4'], out, FPS))
    assert (out / 'vfr.mp4').read_bytes() == before
    for name in ('vfr.mp4', 'good.mp4'):
        assert again[name].status == 'exists' and again[name].notes[-1] == KEPT_EXISTING
        assert again[name].frame_count == first[name].frame_count
    assert again['vfr.mp4'].duplicated_frames == first['vfr.mp4'].duplicated_frames  # from the manifest
    assert json.loads((out / 'manifest.json').read_text())[0]['status'] == 'exists'

    (redone,) = prepare_existing_videos([cameras / 'vfr.mp4'], out, FPS, overwrite=True)
    assert redone.status == 'written' and codes(out / 'vfr.mp4') == expected_frames('vfr.mp4')


def test_rotated_phone_video_is_turned_as_players_turn_it(cameras, tmp_path):
    source = cameras / 'good.mp4'
    rotated = tmp_path / 'phone.mp4'
    with av.open(str(source)) as reader, av.open(str(rotated), 'w') as writer:
        stream = writer.add_stream_from_template(reader.streams.video[0])
        stream.set_display_rotation(90)
        for packet in reader.demux(reader.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                writer.mux(packet)
    (record,) = prepare_existing_videos([rotated], tmp_path / 'out', FPS)
    assert record.action == 're-encoded' and record.reasons[0].startswith('rotated 90 degrees')
    assert (record.width, record.height) == (48, 64)

    def first_frame_by_opencv(path):  # an independent reader that applies the display matrix
        capture = cv2.VideoCapture(str(path))
        ok, image = capture.read()
        capture.release()
        assert ok
        return image.astype(int)

    turned, prepared = first_frame_by_opencv(rotated), first_frame_by_opencv(tmp_path / 'out/phone.mp4')
    assert turned.shape == prepared.shape == (64, 48, 3)
    assert np.abs(turned - prepared).mean() < 3


def run(*argv, **options):
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command('prepare_videos', *map(str, argv), stdout=stdout, stderr=stderr, verbosity=1, **options)
    return stdout.getvalue(), stderr.getvalue()


def test_command_reports_each_file_and_refuses_bad_ones(cameras, tmp_path):
    (cameras / 'notes.mp4').write_text('not a video')
    (cameras / 'empty.mov').write_bytes(b'')
    (tmp_path / 'list.m3u8').write_text(f'#EXTM3U\n#EXTINF:1,\n{cameras}/good.mp4\n')
    stdout, stderr = run(
        cameras / 'late.mp4',
        cameras / 'notes.mp4',
        cameras / 'empty.mov',
        tmp_path / 'list.m3u8',
        tmp_path / 'missing.mp4',
        '--out',
        tmp_path / 'out',
        '--fps',
        '25',
    )
    assert f're-encoded {cameras}/late.mp4 -> late.mp4: 20 frames at 25 fps (0 dropped, 0 duplicated)' in stdout
    assert '           the first frame is at 1.200 s, not 0' in stdout
    assert '5 file(s) at 25 fps: 1 re-encoded, 0 copied unchanged, 0 kept (already there), 4 refused' in stdout
    errors = [line for line in stderr.splitlines() if line.startswith('error: ')]
    assert errors == [
        f'error: {cameras}/notes.mp4: FFmpeg cannot read it as a video (invalid data: not a video, or truncated)',
        f'error: {cameras}/empty.mov: an empty file, not a video',
        f'error: {tmp_path}/list.m3u8: an HLS playlist, not a video file: refused (the player would fetch the files it names)',
        f'error: {tmp_path}/missing.mp4: no such file',
    ]
    assert 'Traceback' not in stderr
    manifest = json.loads((tmp_path / 'out/manifest.json').read_text())
    assert [row['action'] for row in manifest] == ['re-encoded', 'refused', 'refused', 'refused', 'refused']

    stdout, _ = run(cameras / 'late.mp4', '--out', tmp_path / 'out', '--fps', '25')
    assert f'kept       {cameras}/late.mp4 -> late.mp4: 20 frames at 25 fps' in stdout


def test_command_fails_only_when_nothing_was_prepared(cameras, tmp_path):
    (cameras / 'notes.mp4').write_text('not a video')
    with pytest.raises(CommandError, match='no video could be prepared from'):
        run(cameras / 'notes.mp4', tmp_path / 'missing', '--out', tmp_path / 'out', '--fps', '25')
    with pytest.raises(CommandError, match='no video could be prepared'):
        run(tmp_path / 'out', '--out', tmp_path / 'out2', '--fps', '25')  # a folder without videos
    with pytest.raises(CommandError, match='give --fps'):
        run(cameras, '--out', tmp_path / 'out')
    with pytest.raises(CommandError, match='frame rate must be positive'):
        run(cameras, '--out', tmp_path / 'out', '--fps', '0')


def test_project_import(cameras, tmp_path, user, client_owner, caplog):
    from tasks.models import Task

    project = make_project(user, VIDEO_TRACKING, 'fish')
    stdout, stderr = run(cameras, '--out', tmp_path / 'out', '--project', project.id)
    assert '5 file(s) at 25 fps: 4 re-encoded, 1 copied unchanged' in stdout
    assert f'project {project.id}: 5 task(s) created, 0 already there' in stdout
    assert 'would mis-align' not in stderr + caplog.text  # every imported file lines up
    tasks = {t.data['source_video'].rsplit('cameras/', 1)[-1]: t for t in Task.objects.filter(project=project)}
    assert set(tasks) == set(SOURCES)
    assert tasks['vfr.mp4'].data['frames'] == len(expected_frames('vfr.mp4'))
    response = client_owner.get(tasks['vfr.mp4'].data['video'])
    assert response.status_code == 200
    served = tmp_path / 'served.mp4'
    served.write_bytes(b''.join(response.streaming_content) if response.streaming else response.content)
    assert codes(served) == expected_frames('vfr.mp4')

    stdout, _ = run(cameras, '--out', tmp_path / 'out', '--project', project.id)
    assert '0 task(s) created, 5 already there' in stdout and project.tasks.count() == 5

    with pytest.raises(CommandError, match='plays videos at frameRate=25, not --fps 30'):
        run(cameras, '--out', tmp_path / 'out30', '--project', project.id, '--fps', '30')


def test_unconfigured_project_gets_the_fps(cameras, tmp_path, user):
    project = make_project(user, '<View></View>', 'fish')
    with pytest.raises(CommandError, match='has no <Video> tag yet: give --fps'):
        run(cameras / 'good.mp4', '--out', tmp_path / 'out', '--project', project.id)
    run(cameras / 'good.mp4', '--out', tmp_path / 'out', '--project', project.id, '--fps', '30', '--labels', 'fish')
    project.refresh_from_db()
    assert video_tags(project.label_config) == [('video', '$video', '30')]
    assert project.tasks.get().data['frames'] == 24  # re-encoded at 30 fps: 0.8 s


def test_import_warns_about_a_file_that_would_misalign(cameras, user, caplog):
    """import_videos (the path frames_to_video and prepare_videos use) given a camera file as it is."""
    from ls_extensions.video.conform import PreparedVideo

    project = make_project(user, VIDEO_TRACKING, 'fish')
    records = [
        PreparedVideo(name, str(cameras / name), 'written', 'copied', frame_count=20)
        for name in ('good.mp4', 'late.mp4')
    ]
    warnings = []
    with caplog.at_level(logging.WARNING, logger='ls_extensions.video.importer'):
        created, _ = import_videos(project, user, records, cameras, 25, warn=warnings.append)
    assert created == 2 and len(warnings) == 1
    assert warnings[0].startswith('late.mp4 would mis-align at frameRate=25: the first frame is at 1.200 s')
    assert warnings[0].endswith('Run manage.py prepare_videos on it first.')
    logged = [r.getMessage() for r in caplog.records if r.name == 'ls_extensions.video.importer']
    assert logged == [f'project {project.id}: importing {warnings[0]}']


def test_label_studio_upload_of_a_camera_file_is_logged(cameras, user, client_owner, caplog):
    """A video uploaded through Label Studio's own import API (a FileUpload, post_save)."""
    project = make_project(user, VIDEO_TRACKING, 'fish')
    with caplog.at_level(logging.WARNING, logger='ls_extensions.video.importer'):
        for name in ('good.mp4', 'vfr.mp4'):
            with open(cameras / name, 'rb') as handle:
                response = client_owner.post(f'/api/projects/{project.id}/import', {name: handle})
            assert response.status_code == 201, response.content
    messages = [r.getMessage() for r in caplog.records if r.name == 'ls_extensions.video.importer']
    assert len(messages) == 1 and messages[0].startswith(f'project {project.id}: uploaded ')
    assert 'vfr.mp4 would mis-align at frameRate=25: ' in messages[0] and 'variable frame rate' in messages[0]
    assert project.tasks.count() == 2  # imported anyway: a warning, not a refusal
