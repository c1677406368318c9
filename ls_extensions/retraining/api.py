"""Thin API views: a project's retraining policy (GET/PATCH), its runs, "retrain now"."""

from django.http import Http404
from projects.models import Project
from rest_framework import status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from ls_extensions.parsers import PARSER_CLASSES
from ls_extensions.permissions import is_project_member
from ls_extensions.retraining import services
from ls_extensions.retraining.models import RetrainingPolicy, TrainingRun
from ls_extensions.retraining.serializers import PolicySerializer, RunSerializer

RUNS_LIMIT = 100


def project_for(request, pk):
    """The project, for members of its organization only (others get 404, like a missing project)."""
    project = Project.objects.filter(pk=pk).select_related('organization').first()
    if project is None or not is_project_member(request.user, project):
        raise Http404
    return project


def policy_of(project):
    policy, _ = RetrainingPolicy.objects.get_or_create(project=project)
    return policy


class RetrainingPolicyAPI(APIView):
    permission_classes = [IsAuthenticated]
    parser_classes = PARSER_CLASSES

    def get(self, request, pk):
        return Response(PolicySerializer(policy_of(project_for(request, pk))).data)

    def patch(self, request, pk):
        policy = policy_of(project_for(request, pk))
        serializer = PolicySerializer(policy, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response(serializer.data)


class TrainingRunsAPI(APIView):
    permission_classes = [IsAuthenticated]

    def get(self, request, pk):
        project = project_for(request, pk)
        runs = TrainingRun.objects.filter(project=project).order_by('-id')[:RUNS_LIMIT]
        return Response(RunSerializer(runs, many=True).data)


class RetrainNowAPI(APIView):
    permission_classes = [IsAuthenticated]

    def post(self, request, pk):
        project = project_for(request, pk)
        policy = services.trigger_now(project.id, 'manual (API)')
        return Response(PolicySerializer(policy).data, status=status.HTTP_202_ACCEPTED)
