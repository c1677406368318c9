"""ls_extensions.video.prepare on small trees of JPEGs whose pixels carry their frame index."""

import csv
import io
import json
from dataclasses import asdict

import cv2
import numpy as np
import pytest
from django.core.management.base import CommandError
from hypothesis import given
from hypothesis import strategies as st

from ls_extensions.video.frames import iter_frames, probe
from ls_extensions.video.management.commands.frames_to_video import Command
from ls_extensions.video.prepare import (
    KEPT,
    find_image_folders,
    natural_key,
    prepare_videos,
    read_image,
    video_names,
)

ON, OFF = (230, 60, 40), (30, 90, 200)


def coded_image(index, width=64, height=48, block=16):
    """Frame whose blocks spell ``index`` in binary, row by row (12 bits at 64x48)."""
    image = np.empty((height, width, 3), np.uint8)
    image[:] = OFF
    cols = width // block
    for bit in range(cols * (height // block)):
        if index >> bit & 1:
            row, col = divmod(bit, cols)
            image[row * block : (row + 1) * block, col * block : (col + 1) * block] = ON
    return image


def read_code(image, block=16):
    cols = image.shape[1] // block
    value = 0
    for bit in range(cols * (image.shape[0] // block)):
        row, col = divmod(bit, cols)
        centre = image[row * block + 4 : (row + 1) * block - 4, col * block + 4 : (col + 1) * block - 4]
        mean = centre.reshape(-1, 3).mean(0)
        if np.abs(mean - ON).sum() < np.abs(mean - OFF).sum():
            value |= 1 << bit
    return value


def write_jpeg(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])


def write_sequence(folder, count, name='img{}.jpg', width=64, height=48, first=1):
    """Image k (natural order) carries code k - first."""
    for k in range(first, first + count):
        write_jpeg(folder / name.format(k), coded_image(k - first, width, height))


def codes(path):
    return [read_code(image) for _, image in iter_frames(path, range(1, probe(path).frame_count + 1))]


def test_natural_sort():
    names = ['img10.jpg', 'img2.jpg', 'IMG3.jpg', 'img1.jpg', 'img02.jpg', 'frame_9_b.jpg', 'frame_10_a.jpg']
    assert sorted(names, key=natural_key) == [
        'frame_9_b.jpg',
        'frame_10_a.jpg',
        'img1.jpg',
        'img02.jpg',
        'img2.jpg',
        'IMG3.jpg',
        'img10.jpg',
    ]


def test_find_image_folders(tmp_path):
    write_sequence(tmp_path / 'a/b/c', 11)
    (tmp_path / 'a/b/c/notes.txt').write_text('not an image')
    (tmp_path / 'a/b/c/._img1.jpg').write_bytes(b'macOS resource fork')
    (tmp_path / 'a/b/c/img5.jpg.bak').write_bytes(b'x')
    write_sequence(tmp_path / 'd', 2, name='IMG{}.JPG')
    write_sequence(tmp_path / 'e', 1, name='x{}.png')
    write_sequence(tmp_path / 'e', 1, name='y{}.jpg')
    write_sequence(tmp_path / '.thumbnails', 2)
    (tmp_path / 'empty/deeper').mkdir(parents=True)
    (tmp_path / 'only_text').mkdir()
    (tmp_path / 'only_text/readme.md').write_text('hello')

    found = find_image_folders(tmp_path)
    assert [item.folder for item in found] == ['a/b/c', 'd', 'e']
    assert [p.name for p in found[0].images] == [f'img{k}.jpg' for k in range(1, 12)]
    assert [p.name for p in found[1].images] == ['IMG1.JPG', 'IMG2.JPG']
    assert [p.name for p in found[2].images] == ['y1.jpg']

    both = find_image_folders(tmp_path, patterns=['*.jpg', '*.png'])
    assert [p.name for p in both[2].images] == ['x1.png', 'y1.jpg']
    assert [item.folder for item in find_image_folders(tmp_path, exclude=tmp_path / 'a/b')] == ['d', 'e']


def test_video_names():
    assert video_names(['.', 'a/b/c', 'x'], 'shots', '.mp4') == {'.': 'shots.mp4', 'a/b/c': 'a__b__c.mp4', 'x': 'x.mp4'}

    names = video_names(['a/b__c', 'a__b/c', 'A', 'a', 'x'], 'root', '.mp4')
    assert names['x'] == 'x.mp4'
    assert names['a/b__c'].startswith('a__b__c-') and names['a__b/c'].startswith('a__b__c-')
    assert names['A'].startswith('A-') and names['a'].startswith('a-')  # clash on case-insensitive disks
    assert len({name.casefold() for name in names.values()}) == 5
    assert video_names(['x', 'a__b/c', 'a/b__c'], 'root', '.mp4')['a/b__c'] == names['a/b__c']  # deterministic


def test_prepare_h264(tmp_path):
    root, out = tmp_path / 'shots', tmp_path / 'out'
    write_sequence(root / 'a/b/c', 12)  # img1..img12: lexical order would put img10 second
    write_sequence(root / 'odd', 5, width=65, height=49)
    (root / 'odd/info.json').write_text('{}')
    (root / 'empty').mkdir()
    calls = []

    records = prepare_videos(root, out, 25, progress=lambda done, total: calls.append((done, total)))

    assert [(r.video, r.source, r.status) for r in records] == [
        ('a__b__c.mp4', 'a/b/c', 'written'),
        ('odd.mp4', 'odd', 'written'),
    ]
    first, odd = records
    assert (first.frame_count, first.fps, first.width, first.height, first.codec) == (12, 25.0, 64, 48, 'h264')
    assert (first.skipped_images, first.warnings, first.error) == ([], [], '')
    assert (odd.frame_count, odd.width, odd.height) == (5, 66, 50)
    assert odd.warnings == [
        'padded 65x49 to 66x50 by repeating the last row/column (h264 needs even sizes); pixel coordinates are unchanged'
    ]
    assert codes(out / 'a__b__c.mp4') == list(range(12))
    assert codes(out / 'odd.mp4') == list(range(5))
    assert probe(out / 'a__b__c.mp4').frame_count == 12 and probe(out / 'a__b__c.mp4').fps == 25.0

    assert json.loads((out / 'manifest.json').read_text()) == [asdict(r) for r in records]
    with open(out / 'manifest.csv', newline='') as handle:
        rows = list(csv.DictReader(handle))
    assert [(row['video'], row['source'], row['frame_count'], row['width']) for row in rows] == [
        ('a__b__c.mp4', 'a/b/c', '12', '64'),
        ('odd.mp4', 'odd', '5', '66'),
    ]
    assert sorted(p.name for p in out.iterdir()) == ['a__b__c.mp4', 'manifest.csv', 'manifest.json', 'odd.mp4']

    assert calls[-1] == (17, 17) and len(calls) == 17 + 2
    assert all(total == 17 for _, total in calls)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_prepare_vp9_keeps_odd_sizes(tmp_path):
    write_sequence(tmp_path / 'src/cam 1', 9, width=65, height=49)
    (record,) = prepare_videos(tmp_path / 'src', tmp_path / 'out', 10, codec='vp9')
    assert (record.video, record.frame_count, record.width, record.height, record.fps) == ('cam 1.webm', 9, 65, 49, 10)
    assert record.warnings == []
    assert codes(tmp_path / 'out/cam 1.webm') == list(range(9))
    assert probe(tmp_path / 'out/cam 1.webm').fps == 10.0


def test_images_in_the_root_itself_are_named_after_the_root(tmp_path):
    write_sequence(tmp_path / 'take7', 3)
    (record,) = prepare_videos(tmp_path / 'take7', tmp_path / 'take7/videos', 25)
    assert (record.video, record.source, record.frame_count) == ('take7.mp4', '.', 3)
    assert codes(tmp_path / 'take7/videos/take7.mp4') == [0, 1, 2]


def test_output_folder_inside_the_root_is_not_walked(tmp_path):
    write_sequence(tmp_path / 'seq', 3)
    write_sequence(tmp_path / 'videos', 2)  # stray images in the output folder
    records = prepare_videos(tmp_path, tmp_path / 'videos', 25)
    assert [r.source for r in records] == ['seq']


def test_colliding_names_get_distinct_files(tmp_path):
    write_sequence(tmp_path / 'src/a/b__c', 3)
    write_sequence(tmp_path / 'src/a__b/c', 4)
    records = prepare_videos(tmp_path / 'src', tmp_path / 'out', 25)
    assert len({r.video for r in records}) == 2
    for record, count in zip(records, (3, 4), strict=True):
        assert record.video.startswith('a__b__c-') and record.video.endswith('.mp4')
        assert record.warnings == [f'named {record.video}: a__b__c was ambiguous']
        assert codes(tmp_path / 'out' / record.video) == list(range(count))


segments = st.text(alphabet='aAb_', min_size=1, max_size=4)


@given(st.lists(st.lists(segments, min_size=1, max_size=3).map('/'.join), unique=True, max_size=8))
def test_video_names_are_unique_and_independent_of_order(folders):
    names = video_names(folders, 'root', '.mp4')
    assert len({name.casefold() for name in names.values()}) == len(folders)
    assert video_names(folders[::-1], 'root', '.mp4') == names


def write_mixed_sizes(folder):
    """Six frames; the fourth is twice the size (with twice the block size, so it reads the same once resized)."""
    write_sequence(folder, 6)
    write_jpeg(folder / 'img4.jpg', coded_image(3, 128, 96, block=32))


def test_size_mismatch_resize(tmp_path):
    write_mixed_sizes(tmp_path / 'src/mixed')
    (record,) = prepare_videos(tmp_path / 'src', tmp_path / 'out', 25, on_size_mismatch='resize')
    assert (record.status, record.frame_count, record.width, record.height) == ('written', 6, 64, 48)
    assert record.warnings == ['resized 1 image(s) to 64x48: img4.jpg is 128x96']
    assert codes(tmp_path / 'out/mixed.mp4') == list(range(6))


def test_size_mismatch_error_refuses_only_that_folder(tmp_path):
    write_mixed_sizes(tmp_path / 'src/mixed')
    write_sequence(tmp_path / 'src/good', 3)
    records = prepare_videos(tmp_path / 'src', tmp_path / 'out', 25, on_size_mismatch='error')
    assert [(r.source, r.status) for r in records] == [('good', 'written'), ('mixed', 'failed')]
    assert records[1].error == 'img4.jpg is 128x96, the first image is 64x48'
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['good.mp4', 'manifest.csv', 'manifest.json']


def write_with_bad_images(folder):
    write_sequence(folder, 7)
    (folder / 'img3.jpg').write_bytes(b'this is not a JPEG')
    full = (folder / 'img5.jpg').read_bytes()
    (folder / 'img5.jpg').write_bytes(full[: len(full) * 2 // 3])  # an interrupted copy


def test_bad_images_skipped_and_listed(tmp_path):
    write_with_bad_images(tmp_path / 'src/seq')
    (record,) = prepare_videos(tmp_path / 'src', tmp_path / 'out', 25, on_bad_image='skip')
    assert (record.status, record.frame_count, record.skipped_images) == ('written', 5, ['img3.jpg', 'img5.jpg'])
    assert codes(tmp_path / 'out/seq.mp4') == [0, 1, 3, 5, 6]


def test_bad_image_error_refuses_the_folder(tmp_path):
    write_with_bad_images(tmp_path / 'src/seq')
    (record,) = prepare_videos(tmp_path / 'src', tmp_path / 'out', 25, on_bad_image='error')
    assert record.status == 'failed' and record.error == f'unreadable image {tmp_path}/src/seq/img3.jpg'
    assert not (tmp_path / 'out/seq.mp4').exists()
    assert [p.name for p in (tmp_path / 'out').iterdir() if p.name.startswith('.')] == []  # no partial file


def test_folder_without_readable_images_fails(tmp_path):
    (tmp_path / 'src/junk').mkdir(parents=True)
    (tmp_path / 'src/junk/a.jpg').write_bytes(b'')
    (record,) = prepare_videos(tmp_path / 'src', tmp_path / 'out', 25)
    assert (record.status, record.error) == ('failed', 'no readable image among 1')


def test_read_image_returns_rgb(tmp_path):
    write_jpeg(tmp_path / 'x.jpg', coded_image(77))
    image = read_image(tmp_path / 'x.jpg')
    assert image.shape == (48, 64, 3) and read_code(image) == 77
    assert read_image(tmp_path / 'missing.jpg') is None


def test_nothing_is_overwritten_without_the_flag(tmp_path):
    write_with_bad_images(tmp_path / 'src/seq')
    out = tmp_path / 'out'
    prepare_videos(tmp_path / 'src', out, 25)
    before = (out / 'seq.mp4').read_bytes()

    (record,) = prepare_videos(tmp_path / 'src', out, 10)
    assert (out / 'seq.mp4').read_bytes() == before
    assert (record.status, record.fps, record.frame_count, record.codec) == ('exists', 25.0, 5, 'h264')
    assert record.skipped_images == ['img3.jpg', 'img5.jpg']  # carried over from the manifest that wrote it
    assert record.warnings == [KEPT]
    assert json.loads((out / 'manifest.json').read_text())[0]['status'] == 'exists'

    (record,) = prepare_videos(tmp_path / 'src', out, 10, overwrite=True)
    assert (record.status, record.fps) == ('written', 10.0)
    assert probe(out / 'seq.mp4').fps == 10.0
    assert codes(out / 'seq.mp4') == [0, 1, 3, 5, 6]


@pytest.mark.parametrize(
    'kwargs,message',
    [
        ({'codec': 'h265'}, 'unknown codec'),
        ({'on_bad_image': 'ignore'}, 'on_bad_image'),
        ({'on_size_mismatch': 'crop'}, 'on_size_mismatch'),
        ({'fps': 0}, 'fps must be positive'),
    ],
)
def test_invalid_options(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        prepare_videos(tmp_path, tmp_path / 'out', **{'fps': 25, **kwargs})


def test_missing_root(tmp_path):
    with pytest.raises(ValueError, match='is not a folder'):
        prepare_videos(tmp_path / 'nope', tmp_path / 'out', 25)


def run_command(*argv):
    """Parse and handle like manage.py would, without needing the project's settings or database."""
    stdout, stderr = io.StringIO(), io.StringIO()
    command = Command(stdout=stdout, stderr=stderr)
    options = vars(command.create_parser('manage.py', 'frames_to_video').parse_args([str(arg) for arg in argv]))
    try:
        command.handle(**options)
    finally:
        command.output = stdout.getvalue(), stderr.getvalue()
    return command.output


def test_command_wraps_prepare(tmp_path):
    write_sequence(tmp_path / 'src/seq', 4)
    stdout, stderr = run_command(tmp_path / 'src', '--out', tmp_path / 'out', '--fps', '30000/1001', '--codec', 'vp9')
    assert 'written  seq -> seq.webm: 4 frames, 64x48, 29.97 fps' in stdout
    assert '1 folder(s): 1 written, 0 kept (already there), 0 failed' in stdout
    assert '100%' in stderr and '4/4' in stderr
    assert codes(tmp_path / 'out/seq.webm') == [0, 1, 2, 3]


def test_command_errors(tmp_path):
    write_mixed_sizes(tmp_path / 'src/mixed')
    with pytest.raises(CommandError, match='1 folder\\(s\\) failed'):
        run_command(tmp_path / 'src', '--out', tmp_path / 'out', '--fps', '25', '--on-size-mismatch', 'error')
    with pytest.raises(CommandError, match="no folder under .* holds images matching \\['\\*.png'\\]"):
        run_command(tmp_path / 'src', '--out', tmp_path / 'out', '--fps', '25', '--pattern', '*.png')
    with pytest.raises(CommandError, match='frame rate must be positive'):
        run_command(tmp_path / 'src', '--out', tmp_path / 'out', '--fps', '-3')
