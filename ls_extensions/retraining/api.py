"""Thin API views: a project's retraining policy (GET/PATCH), its runs, "retrain now"."""

from core.permissions import ViewClassPermission, all_permissions
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from ls_extensions.parsers import PARSER_CLASSES
from ls_extensions.permissions import ProjectMemberAPIMixin
from ls_extensions.retraining import triggers
from ls_extensions.retraining.models import RetrainingPolicy, TrainingRun
from ls_extensions.retraining.serializers import PolicySerializer, RunSerializer
from ls_extensions.schema import project_operation

RUNS_LIMIT = 100
TAGS = ['Retraining']


def policy_of(project):
    policy, _ = RetrainingPolicy.objects.get_or_create(project=project)
    return policy


class RetrainingPolicyAPI(ProjectMemberAPIMixin, APIView):
    permission_required = ViewClassPermission(GET=all_permissions.projects_view, PATCH=all_permissions.projects_change)
    parser_classes = PARSER_CLASSES

    @project_operation(
        TAGS,
        "Get the project's retraining policy",
        'When the ML backend retrains (annotations changed since the last run, minimum interval), '
        'which backend, whether the unlabeled tasks are re-predicted after, and the live state (pending, running, '
        'stopped by failures). Created with the defaults (disabled) on first read.',
        PolicySerializer,
    )
    def get(self, request, pk):
        return Response(PolicySerializer(policy_of(self.get_project())).data)

    @project_operation(
        TAGS,
        "Change the project's retraining policy",
        'Change any of the writable fields (the state fields are read-only); saving resumes a policy '
        'stopped by failures.',
        PolicySerializer,
        request=PolicySerializer,
        invalid=True,
    )
    def patch(self, request, pk):
        policy = policy_of(self.get_project())
        serializer = PolicySerializer(policy, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response(serializer.data)


class TrainingRunsAPI(ProjectMemberAPIMixin, APIView):
    permission_required = all_permissions.projects_view

    @project_operation(
        TAGS,
        "List the project's training runs",
        f'The latest {RUNS_LIMIT} training runs, newest first: trigger, status, annotations used, '
        'model versions before and after, re-prediction progress, metrics and error.',
        RunSerializer(many=True),
    )
    def get(self, request, pk):
        project = self.get_project()
        runs = TrainingRun.objects.filter(project=project).order_by('-id')[:RUNS_LIMIT]
        return Response(RunSerializer(runs, many=True).data)


class RetrainNowAPI(ProjectMemberAPIMixin, APIView):
    permission_required = all_permissions.projects_change

    @project_operation(
        TAGS,
        'Retrain now',
        'Ask for a training run now, whatever the threshold: it starts in the background, or follows '
        'the run that is going. The answer is the policy (``pending``, ``running``).',
        PolicySerializer,
        status=202,
    )
    def post(self, request, pk):
        project = self.get_project()
        policy = triggers.trigger_now(project.id, 'manual (API)')
        return Response(PolicySerializer(policy).data, status=status.HTTP_202_ACCEPTED)
