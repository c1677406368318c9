"""Thin API views over ``services``: read and change a project's scoring policy, start a recompute."""

from core.permissions import ViewClassPermission, all_permissions
from django.db.models import Count, Q, Sum
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from ls_extensions.parsers import PARSER_CLASSES
from ls_extensions.permissions import ProjectMemberAPIMixin
from ls_extensions.schema import project_operation
from ls_extensions.scoring import jobs, measures, services
from ls_extensions.scoring.models import KnownVersion, RecomputeJob, TaskMistake, TaskUncertainty
from ls_extensions.scoring.serializers import (
    JobSerializer,
    MistakePageSerializer,
    MistakeQuerySerializer,
    MistakeSerializer,
    PolicyReportSerializer,
    PolicyUpdateSerializer,
)

TAGS = ['Uncertainty']


class ScoringProjectAPI(ProjectMemberAPIMixin, APIView):
    """Members of the project's organization only (others get 404, like a missing project).

    The project must be in the user's active organization too (``Project.objects.for_user``); the
    membership check is what refuses a removed member, who still has that organization active.
    """

    active_organization_only = True


def policy_report(project):
    """Everything a user needs to see which version and measure rank the tasks, and how it went."""
    policy = services.get_policy(project.id)
    desired_version, desired_measure = services.desired_state(policy)
    titles = services.backend_versions(project.id)
    rows = TaskUncertainty.objects.filter(project_id=project.id).aggregate(
        ranked=Count('id', filter=Q(value__isnull=False)),
        unranked=Count('id', filter=Q(value__isnull=True)),
        clamped=Sum('clamped'),
        ignored=Sum('ignored'),
    )
    job = RecomputeJob.objects.filter(project_id=project.id).order_by('-id').first()
    stream = services.stream_state(project, policy)
    versions = KnownVersion.objects.filter(project_id=project.id).order_by('-first_seen_at', '-id')
    return {
        'project': project.id,
        'measure': policy.measure,
        'measures': measures.DESCRIPTIONS,
        'pinned_version': policy.pinned_version,
        'active_version': policy.active_version,
        'active_measure': policy.active_measure,
        'desired_version': desired_version,
        'up_to_date': policy.complete
        and (desired_version, desired_measure) == (policy.active_version, policy.active_measure),
        'versions': list(versions.values('version', 'first_seen_at', 'source')),
        'project_model_version': project.model_version,
        'project_model_version_is_backend_title': project.model_version in titles,
        'stream': services.serves_stream(project, policy),
        'diverse': policy.diverse,
        'warmup_annotations': policy.warmup_annotations,
        'labeled_tasks': stream['labeled'],
        'stream_mode': stream['mode'],
        'tasks': {key: value or 0 for key, value in rows.items()},
        'job': JobSerializer(job).data if job else None,
    }


class UncertaintyPolicyAPI(ScoringProjectAPI):
    """GET the project's uncertainty policy and progress; PATCH measure, pinned version, stream."""

    permission_required = ViewClassPermission(GET=all_permissions.projects_view, PATCH=all_permissions.projects_change)
    parser_classes = PARSER_CLASSES

    @project_operation(
        TAGS,
        "Get the project's uncertainty policy",
        'The measure and model version that rank the tasks, the versions seen, how many tasks are '
        'ranked, whether Label All Tasks serves the most uncertain first, and the latest recompute job.',
        PolicyReportSerializer,
    )
    def get(self, request, pk):
        return Response(policy_report(self.get_project()))

    @project_operation(
        TAGS,
        "Change the project's uncertainty policy",
        'Change the measure, pin a model version (null: follow the newest) or turn the uncertainty '
        'stream on or off; the stored values are recomputed when they no longer match. Answers the policy as GET.',
        PolicyReportSerializer,
        request=PolicyUpdateSerializer,
        invalid=True,
    )
    def patch(self, request, pk):
        project = self.get_project()
        serializer = PolicyUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.change_policy(project, serializer.validated_data)
        return Response(policy_report(project))


class UncertaintyRecomputeAPI(ScoringProjectAPI):
    """POST: recompute the whole project's uncertainty in the background; poll GET for progress."""

    permission_required = all_permissions.projects_change

    @project_operation(
        TAGS,
        "Recompute the project's uncertainty",
        "Recompute every task's uncertainty in the background; the answer is the job, whose "
        'progress the policy (GET) shows.',
        JobSerializer,
        status=202,
    )
    def post(self, request, pk):
        project = self.get_project()
        job = jobs.enqueue(project.id, reason='API request')
        job.refresh_from_db()  # an inline runner has finished it already
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class MistakesAPI(ScoringProjectAPI):
    """GET the labeled tasks' possible mistakes, likeliest first (the Data Manager's "Possible mistake")."""

    permission_required = all_permissions.projects_view

    @project_operation(
        TAGS,
        "List the project's possible annotation mistakes",
        "Labeled tasks whose annotation the current model version's prediction disagrees with, the likeliest "
        'mistake first: the value in [0, 1], the counts per kind (missing, spurious, off, wrong_label), the '
        'prediction and annotation compared, and for videos the worst frames. Tasks need a prediction of the '
        "active version (see the retraining policy's ``predict_labeled``).",
        MistakePageSerializer,
        invalid=True,
        query=MistakeQuerySerializer,
    )
    def get(self, request, pk):
        project = self.get_project()
        query = MistakeQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        options = query.validated_data
        rows = TaskMistake.objects.filter(project_id=project.id)
        if 'kind' in options:
            rows = rows.filter(**{f'{options["kind"]}__gt': 0})
        if 'min_value' in options:
            rows = rows.filter(value__gte=options['min_value'])
        size = options['page_size']
        start = (options['page'] - 1) * size
        return Response(
            {
                'count': rows.count(),
                'model_version': services.get_policy(project.id).active_version,
                'results': MistakeSerializer(rows.order_by('-value', 'task_id')[start : start + size], many=True).data,
            }
        )
