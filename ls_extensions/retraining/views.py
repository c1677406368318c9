"""The project's retraining page: the policy as a form, "Retrain now", the live state and the run history.

Server-rendered inside Label Studio's own page (it extends Label Studio's ``base.html``: its React app
shows our ``content`` block under its header, as it does for its own Django-rendered pages); a
three-line script reloads it every few seconds while a run is going or pending. Members of the
project's organization only, like the API (others get 404; the idiom: ``ls_extensions/permissions.py``).
An HTML page, not an API view: not in the API docs.
"""

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods
from ml.models import MLBackend, MLBackendState

from ls_extensions.permissions import member_project_or_404
from ls_extensions.retraining import learning_curve, presentation, triggers
from ls_extensions.retraining.api import RUNS_LIMIT, policy_of
from ls_extensions.retraining.models import TrainingRun
from ls_extensions.retraining.serializers import PolicySerializer

REFRESH_SECONDS = 5
CHECKBOXES = ('enabled', 'repredict', 'predict_labeled')
NUMBERS = ('threshold', 'min_interval_seconds', 'batch_size', 'training_timeout_seconds')
NOTICES = {
    'saved': 'Policy saved.',
    'requested': 'Retraining requested: a run starts in the background.',
    'queued': 'A run is going: one more run will follow it.',
    'stream': 'Stream settings saved.',
}


def form_data(post):
    """The POSTed form as the serializer's input: unchecked boxes are absent, an empty backend is none."""
    data = {name: name in post for name in CHECKBOXES}
    for name in NUMBERS:
        data[name] = post.get(name, '').strip()
    backend = post.get('ml_backend', '').strip()
    data['ml_backend'] = backend or None
    return data


def duration(run, now):
    if run.started_at is None:
        return ''
    seconds = int(((run.finished_at or now) - run.started_at).total_seconds())
    minutes, seconds = divmod(max(seconds, 0), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f'{hours}h {minutes}m'
    return f'{minutes}m {seconds}s' if minutes else f'{seconds}s'


def run_rows(project):
    now = timezone.now()
    runs = TrainingRun.objects.filter(project=project).order_by('-id')[:RUNS_LIMIT]
    rows = []
    for run in runs:
        percent = int(100 * run.tasks_predicted / run.tasks_to_predict) if run.tasks_to_predict else None
        going = run.status not in TrainingRun.FINISHED
        rows.append(
            {
                'run': run,
                'title': presentation.run_title(run.trigger, run.metrics),
                'predict_only': bool((run.metrics or {}).get('predict_only')),
                'duration': duration(run, now),
                'metrics': presentation.readable_metrics(run.metrics, finished=not going),
                'message': presentation.backend_message(run.metrics),
                'percent': percent,
                'going': going,
            }
        )
    return rows


def curve_of(project):
    """The learning curve's points and SVG, from every run of the project that measured a held-out mAP."""
    runs = TrainingRun.objects.filter(project=project, status__in=(TrainingRun.SUCCEEDED, TrainingRun.REJECTED))
    records = runs.values('id', 'status', 'annotations_used', 'version_after', 'metrics').order_by('id')
    curve = learning_curve.points(records)
    return {'points': curve, 'svg': mark_safe(learning_curve.svg(curve))}  # noqa: S308 - numbers and escaped text


def stream_state(project):
    """What "Label All Tasks" serves now (scoring's stream: off, warm-up or uncertainty), for the state box."""
    from ls_extensions.scoring import services

    policy = services.get_policy(project.id)
    return {**services.stream_state(project, policy), 'policy': policy}


def backend_rows(project, selected):
    """The project's ML backends with the state Label Studio last recorded (an error says why)."""
    return [
        {
            'id': b.id,
            'label': b.title or b.url,
            'url': b.url,
            'selected': str(b.id) == selected,
            'state': b.get_state_display(),
            'error': (b.error_message or '') if b.state == MLBackendState.ERROR else '',
        }
        for b in MLBackend.objects.filter(project=project).order_by('id')
    ]


def page_context(request, project, policy, values=None, errors=None):
    rows = run_rows(project)
    going = policy.running or policy.pending or any(row['going'] for row in rows)
    if values is None:
        values = {
            **{name: getattr(policy, name) for name in (*CHECKBOXES, *NUMBERS)},
            'ml_backend': policy.ml_backend_id,
        }
    selected = str(values.get('ml_backend') or '')
    backends = backend_rows(project, selected)
    stream = stream_state(project)
    return {
        'project': project,
        'policy': policy,
        'values': values,
        'errors': errors or {},
        'backends': backends,
        'rows': rows,
        'curve': curve_of(project),
        'stream': stream,
        'stream_values': {name: getattr(stream['policy'], name) for name in ('diverse', 'warmup_annotations')},
        'stream_errors': {},
        'going': going,
        'refresh_seconds': REFRESH_SECONDS if going else None,
        'notice': NOTICES.get(request.GET.get('done', '')),
        'page_url': reverse('ls_ext_retraining:page', args=[project.id]),
        'runs_limit': RUNS_LIMIT,
        'predict_only_help': presentation.PREDICT_ONLY_HELP,
    }


def error_messages(errors):
    """DRF's error dict as {field: 'message; message'} for the template."""
    messages = {}
    for field, items in errors.items():
        items = items if isinstance(items, list) else [items]
        messages[field] = '; '.join(str(item) for item in items)
    return messages


def stream_form(request, project, policy, url):
    """The stream's warm-up and diversity, saved through scoring's own validation and service."""
    from ls_extensions.scoring import services
    from ls_extensions.scoring.serializers import PolicyUpdateSerializer

    data = {
        'diverse': 'diverse' in request.POST,
        'warmup_annotations': request.POST.get('warmup_annotations', '').strip(),
    }
    serializer = PolicyUpdateSerializer(data=data)
    if serializer.is_valid():
        services.change_policy(project, serializer.validated_data)
        return redirect(f'{url}?done=stream')
    context = page_context(request, project, policy)
    context.update(stream_values=data, stream_errors=error_messages(serializer.errors))
    return render(request, 'ls_ext_retraining/page.html', context, status=400)


@login_required
@require_http_methods(['GET', 'POST'])
def retraining_page(request, pk):
    project = member_project_or_404(request.user, pk)
    policy = policy_of(project)
    url = reverse('ls_ext_retraining:page', args=[project.id])

    if request.method == 'POST':
        action = request.POST.get('action', 'save')
        if action == 'retrain':
            policy = triggers.trigger_now(project.id, 'manual (page)')
            return redirect(f'{url}?done={"queued" if policy.running else "requested"}')
        if action == 'stream':
            return stream_form(request, project, policy, url)
        data = form_data(request.POST)
        serializer = PolicySerializer(policy, data=data, partial=True)
        if serializer.is_valid():
            serializer.save()
            return redirect(f'{url}?done=saved')
        policy.refresh_from_db()  # the state columns as they are; nothing of the form was saved
        context = page_context(request, project, policy, values=data, errors=error_messages(serializer.errors))
        return render(request, 'ls_ext_retraining/page.html', context, status=400)

    return render(request, 'ls_ext_retraining/page.html', page_context(request, project, policy))
