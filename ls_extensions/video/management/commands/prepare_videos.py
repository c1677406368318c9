"""``manage.py prepare_videos``: existing video files -> files whose frames line up in Label Studio.

The sibling of ``frames_to_video`` for camera files: a thin wrapper over
``ls_extensions.video.conform`` (what is re-encoded and how) and ``probe`` (why).
"""

from functools import partial

from django.core.management.base import CommandError

from ls_extensions.video.conform import prepare_existing_videos
from ls_extensions.video.export.config import project_frame_rate, video_tags
from ls_extensions.video.importer import ImportRefused, import_videos
from ls_extensions.video.limits import max_frames
from ls_extensions.video.management.commands.frames_to_video import Command as FramesToVideo
from ls_extensions.video.management.commands.frames_to_video import frame_rate

SOURCE_KEY = 'source_video'  # task data key holding the source file, so a re-run imports nothing twice


class Command(FramesToVideo):
    help = (
        'Probe each video (files, or video files under folders) and write to --out a copy of each one whose '
        "frames line up in Label Studio at the project's frame rate, a constant-frame-rate H.264 re-encode "
        'starting at 0 of each other one, and manifest.json/manifest.csv saying what was done and why.'
    )

    def add_arguments(self, parser):
        parser.add_argument('inputs', nargs='+', help='video files, or folders searched for video files')
        parser.add_argument('--out', required=True, help='output folder for the videos and the manifest')
        parser.add_argument('--fps', type=frame_rate, help="the project's frame rate (default: --project's)")
        parser.add_argument('--crf', type=int, help='H.264 quality of re-encodes, lower is better (default 12)')
        parser.add_argument('--overwrite', action='store_true', help='prepare again files already in --out')
        self.add_import_arguments(parser)

    def handle(self, *, inputs, out, fps, crf, overwrite, **options):
        project = user = None
        if options['project']:
            project, user = self.import_target(options['project'], options['user'])
            fps = self.project_fps(project, fps)
        elif fps is None:
            raise CommandError("give --fps (the label config's frameRate) or --project")
        with self.progress_bar('file', options['verbosity']) as progress:
            try:
                records = prepare_existing_videos(
                    inputs, out, fps, overwrite=overwrite, crf=crf, frame_limit=max_frames(), progress=progress
                )
            except (ValueError, OSError) as exc:
                raise CommandError(str(exc)) from exc

        self.report(records, out, fps, options['verbosity'])
        prepared = [record for record in records if record.status != 'failed']
        if not prepared:
            raise CommandError(f'no video could be prepared from {" ".join(map(str, inputs))}')
        if project is not None:
            warn = partial(self.stderr.write, style_func=self.style.WARNING)
            try:
                created, existing = import_videos(
                    project, user, prepared, out, fps, options['labels'], source_key=SOURCE_KEY, warn=warn
                )
            except ImportRefused as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(f'project {project.id}: {created} task(s) created, {existing} already there')

    def project_fps(self, project, fps):
        """The project's frameRate wins; a different --fps, or none for an unconfigured project, is refused."""
        if not video_tags(project.label_config):
            if fps is None:
                raise CommandError(f'project {project.id} has no <Video> tag yet: give --fps (and --labels)')
            return fps
        project_fps = project_frame_rate(project)
        if project_fps is None:
            raise CommandError(f'project {project.id} has a <Video frameRate> that is not a number: give it one')
        if fps is not None and fps != project_fps:
            raise CommandError(
                f'project {project.id} plays videos at frameRate={float(project_fps):g}, not --fps {float(fps):g}'
            )
        return project_fps

    def report(self, records, out, fps, verbosity):
        """One line per file (refusals on stderr, as errors), then the totals."""
        for record in records:
            if record.status == 'failed':
                self.stderr.write(f'error: {record.error}', style_func=self.style.ERROR)
                continue
            if not verbosity:
                continue
            action = 'kept' if record.status == 'exists' else record.action
            line = f'{action:10} {record.source} -> {record.video}: {record.frame_count} frames at {record.fps:g} fps'
            if record.action == 're-encoded' and record.status == 'written':
                line += f' ({record.dropped_frames} dropped, {record.duplicated_frames} duplicated)'
            self.stdout.write(line)
            for note in record.reasons + record.notes:
                self.stdout.write(f'           {note}')
        count = {
            name: sum(test(r) for r in records)
            for name, test in (
                ('re-encoded', lambda r: r.status == 'written' and r.action == 're-encoded'),
                ('copied', lambda r: r.status == 'written' and r.action == 'copied'),
                ('kept', lambda r: r.status == 'exists'),
                ('refused', lambda r: r.status == 'failed'),
            )
        }
        self.stdout.write(
            f'{len(records)} file(s) at {float(fps):g} fps: {count["re-encoded"]} re-encoded, {count["copied"]} '
            f'copied unchanged, {count["kept"]} kept (already there), {count["refused"]} refused; '
            f'manifest: {out}/manifest.json'
        )
