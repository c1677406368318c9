"""What the run asks the ML backend beyond Label Studio's own calls: its training jobs and their state.

``MLApi._request`` reads our model server's ``GET /training``; other backends are read from ``GET /versions``.
"""

from datetime import UTC

from ls_extensions.retraining.models import TrainingRun


def train_job_since(backend, moment):
    """The training job Label Studio recorded for ``backend`` since ``moment`` (``MLBackend.train`` does)."""
    from ml.models import MLBackendTrainJob

    return MLBackendTrainJob.objects.filter(ml_backend=backend, created_at__gte=moment).order_by('-id').first()


def backend_job_since(backend, run):
    """The id of the training job our model server lists (``GET /training``) for the run's project, created
    since the run's claim; '' when there is none or the backend does not list its jobs."""
    answer = backend.api._request('training', method='GET', verbose=False, timeout=10)
    if answer.is_error or not isinstance(answer.response, dict):
        return ''
    status = answer.response
    since = run.requested_at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')  # the server's created_at format
    listed = [status.get('running'), status.get('queued'), *(status.get('history') or [])]
    # never an earlier run's job, whatever the two clocks say
    earlier = set(
        TrainingRun.objects.filter(project_id=run.project_id).exclude(pk=run.pk).values_list('job_id', flat=True)
    )
    for job in listed:
        if isinstance(job, dict) and job.get('project') == run.project_id and str(job.get('created_at', '')) >= since:
            if job.get('id') and str(job['id']) not in earlier:
                return str(job['id'])
    return ''


def training_state(backend, run):
    """('running' | 'succeeded' | 'rejected' | 'failed' | 'lost' | 'unreachable', version, metrics, message).

    Our model server answers ``GET /training`` with its jobs: the run's job by id, or ``lost`` when the
    server no longer knows it (it restarted). Any other backend is read from ``GET /versions``: a version
    other than the one before means the training succeeded.
    """
    if run.job_id:
        answer = backend.api._request('training', method='GET', verbose=False, timeout=10)
        if answer.is_error and not answer.status_code:
            return 'unreachable', '', {}, answer.error_message or 'no answer'
        if not answer.is_error and isinstance(answer.response, dict) and 'history' in answer.response:
            status = answer.response
            for job in status['history']:
                if job and job.get('id') == run.job_id:
                    state = job.get('status') if job.get('status') in ('succeeded', 'rejected') else 'failed'
                    images = {k: job[k] for k in ('train_images', 'eval_images') if isinstance(job.get(k), int)}
                    metrics = {**(job.get('metrics') or {}), **images}
                    return state, job.get('version') or '', metrics, job.get('message') or ''
            for key in ('running', 'queued'):
                if (status.get(key) or {}).get('id') == run.job_id:
                    return 'running', '', (status.get(key) or {}).get('progress') or {}, ''
            return 'lost', '', {}, f'the backend no longer knows training job {run.job_id} (restarted?)'
    answer = backend.get_versions()
    if answer.is_error:
        return ('running' if answer.status_code else 'unreachable'), '', {}, answer.error_message or ''
    current = answer.response.get('current') or (answer.response.get('versions') or [''])[-1]
    if current and current != run.version_before:
        return 'succeeded', current, {}, ''
    return 'running', '', {}, ''
