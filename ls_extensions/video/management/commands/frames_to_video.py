"""``manage.py frames_to_video``: image-sequence folders -> browser-playable videos plus a manifest.

A thin wrapper over ``ls_extensions.video.prepare``; all behaviour (naming, policies, overwrite) is
documented and tested there.
"""

from argparse import ArgumentTypeError
from contextlib import contextmanager
from fractions import Fraction
from functools import partial
from types import SimpleNamespace

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from ls_extensions.permissions import is_project_member
from ls_extensions.video.frames import CODECS
from ls_extensions.video.importer import ImportRefused, import_videos
from ls_extensions.video.prepare import BAD_IMAGE, DEFAULT_PATTERNS, SIZE_MISMATCH, prepare_videos


def frame_rate(value: str) -> Fraction:
    """``25``, ``29.97`` or ``30000/1001``; it must equal the label config's ``<Video frameRate>``."""
    try:
        fps = Fraction(value)
    except (ValueError, ZeroDivisionError):
        raise ArgumentTypeError(f'not a frame rate: {value!r}') from None
    if fps <= 0:
        raise ArgumentTypeError(f'frame rate must be positive: {value!r}')
    return fps


class Command(BaseCommand):
    help = (
        'Encode each folder under ROOT that holds images into one video named after its relative path '
        '(a/b/c -> a__b__c.mp4) and write manifest.json and manifest.csv to --out.'
    )
    requires_system_checks = []  # encoding works on files only; --project checks its target itself

    def add_arguments(self, parser):
        parser.add_argument('root', help='folder to search for image sequences')
        parser.add_argument('--out', required=True, help='output folder for the videos and the manifest')
        parser.add_argument('--fps', type=frame_rate, required=True, help="frame rate; use the label config's")
        parser.add_argument(
            '--pattern', action='append', dest='patterns', help='image glob, case-insensitive, repeatable (*.jpg)'
        )
        parser.add_argument('--codec', choices=sorted(CODECS), default='h264', help='h264 (MP4) or vp9 (WebM)')
        parser.add_argument('--crf', type=int, help='quality, lower is better (default: h264 12, vp9 15)')
        parser.add_argument('--overwrite', action='store_true', help='re-encode videos that already exist')
        parser.add_argument('--on-size-mismatch', choices=SIZE_MISMATCH, default='resize')
        parser.add_argument('--on-bad-image', choices=BAD_IMAGE, default='skip')
        self.add_import_arguments(parser)

    @staticmethod
    def add_import_arguments(parser):
        """--project, --user, --labels: the Label Studio import both video commands offer."""
        parser.add_argument('--project', type=int, help='import the videos as tasks of this Label Studio project')
        parser.add_argument('--user', help="uploader's email for --project (default: the project's creator)")
        parser.add_argument(
            '--labels',
            type=lambda s: [x.strip() for x in s.split(',') if x.strip()],
            default=[],
            help='comma-separated labels, for a --project that has no video label config yet',
        )

    def handle(self, *, root, out, fps, patterns, codec, crf, overwrite, on_size_mismatch, on_bad_image, **options):
        project, user = self.import_target(options['project'], options['user']) if options['project'] else (None, None)
        with self.progress_bar('frame', options['verbosity']) as progress:
            try:
                records = prepare_videos(
                    root,
                    out,
                    fps,
                    patterns=patterns or DEFAULT_PATTERNS,
                    codec=codec,
                    crf=crf,
                    overwrite=overwrite,
                    on_size_mismatch=on_size_mismatch,
                    on_bad_image=on_bad_image,
                    progress=progress,
                )
            except ValueError as exc:
                raise CommandError(str(exc)) from exc

        if not records:
            raise CommandError(f'no folder under {root} holds images matching {list(patterns or DEFAULT_PATTERNS)}')

        self.summarize(records, out, options['verbosity'])
        if project is not None:
            try:
                created, existing = import_videos(project, user, records, out, fps, options['labels'])
            except ImportRefused as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(f'project {project.id}: {created} task(s) created, {existing} already there')
        failed = sum(record.status == 'failed' for record in records)
        if failed:
            raise CommandError(f'{failed} folder(s) failed; see {out}/manifest.json')

    @contextmanager
    def progress_bar(self, unit, verbosity):
        """A ``progress(done, total)`` callback drawing a bar on stderr (none at verbosity 0)."""
        # Django appends a newline to every write; the bar needs raw '\r' updates.
        raw_stderr = SimpleNamespace(
            write=partial(self.stderr.write, ending='', style_func=str), flush=self.stderr.flush
        )
        with tqdm(total=0, unit=unit, file=raw_stderr, disable=verbosity == 0) as bar:

            def progress(done, total):
                bar.total = total
                bar.update(done - bar.n)

            yield progress

    def import_target(self, project_id, email):
        """Check the project and user before encoding anything, so a typo costs no encoding time."""
        from projects.models import Project
        from users.models import User

        project = Project.objects.filter(id=project_id).select_related('created_by').first()
        if project is None:
            raise CommandError(f'project {project_id} does not exist')
        user = User.objects.filter(email=email).first() if email else project.created_by
        if user is None:
            raise CommandError(f'no user with email {email!r}')
        if not is_project_member(user, project):
            raise CommandError(f'{user.email} is not a member of the organization of project {project_id}')
        return project, user

    def summarize(self, records, out, verbosity):
        for record in records if verbosity else ():
            line = f'{record.status:8} {record.source} -> {record.video}'
            if record.status != 'failed':
                line += f': {record.frame_count} frames, {record.width}x{record.height}, {record.fps:g} fps'
            self.stdout.write(line)
            notes = [f'error: {record.error}'] if record.error else []
            if record.skipped_images:
                notes.append(f'skipped {len(record.skipped_images)} unreadable: {", ".join(record.skipped_images)}')
            for note in notes + record.warnings:
                self.stdout.write(f'         {note}')
        counts = {status: sum(r.status == status for r in records) for status in ('written', 'exists', 'failed')}
        self.stdout.write(
            f'{len(records)} folder(s): {counts["written"]} written, {counts["exists"]} kept (already there), '
            f'{counts["failed"]} failed; manifest: {out}/manifest.json'
        )
