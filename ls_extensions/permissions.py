"""Who may touch a project through our endpoints, Data Manager actions and commands: one idiom.

Label Studio's open-source ``Project.has_permission`` only rejects revoked memberships ("LSO always
runs a single organization"), so it lets a member of another organization through, and its
``permission_required`` attributes are declarations that nothing in the open-source edition enforces.
Every endpoint and action of ours therefore does both of these:

1. **Declare Label Studio's permission**, as Label Studio's own code does, so that an edition that
   enforces roles (and a reader) sees what each method needs:

   - an API view sets ``permission_required = ViewClassPermission(GET=..., PATCH=...)`` (or one
     permission for every method) from ``core.permissions.all_permissions``;
   - a Data Manager action is registered with ``register_action(..., permission=all_permissions.X)``.

2. **Check membership of the project's organization** (``is_project_member``) with the helper of its
   kind, which answers what that endpoint has always answered:

   - API views about a project (``<int:pk>`` in the URL) inherit ``ProjectMemberAPIMixin`` and get the
     project from ``self.get_project()``: anonymous -> 401 (``IsAuthenticated``), a missing project or a
     non-member -> 404, as for a project that does not exist (nothing tells a stranger it exists);
   - Django pages (the retraining page) are ``login_required`` (anonymous -> the login page) and call
     ``member_project_or_404(request.user, pk)``: non-members -> 404, like the API they mirror;
   - Data Manager actions start with ``refusal = action_refusal(project, kwargs)`` and return it when
     set: a non-member -> 403 (``/api/dm/actions`` has already told the user the project exists); an
     action's dialog form calls ``require_member(user, project)`` (403 too);
   - views built on Label Studio's generic views (``/api/ml/``, the video export routes) keep Label
     Studio's permission classes and object lookup (``get_object``) and add the membership check on the
     object (``is_project_member`` in ``check_object_permissions`` or the queryset of the user's
     organization): 403 or 404, as Label Studio answers there.

``tests/test_security_table.py`` checks every method of every route and every action of ours against
these answers (anonymous, another organization's member, a removed member, the owner).
"""

from django.http import Http404
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import IsAuthenticated

NOT_A_MEMBER = "Only members of the project's organization can run this action."


def is_project_member(user, project):
    """True when ``user`` is an active member of ``project``'s organization."""
    if user is None or not user.is_authenticated:
        return False
    organization = project.organization
    return organization is not None and organization.has_user(user) and not organization.has_deleted(user)


def require_member(user, project, message=NOT_A_MEMBER):
    """Raise DRF's ``PermissionDenied`` (a 403 with ``message``) unless ``user`` is a member."""
    if not is_project_member(user, project):
        raise PermissionDenied(message)


def member_project_or_404(user, pk, active_organization_only=False):
    """The project ``pk`` for an active member of its organization; ``Http404`` for anyone else.

    With ``active_organization_only`` the project must also be in the user's active organization
    (``Project.objects.for_user``), which a user of several organizations switches between.
    """
    from projects.models import Project

    projects = Project.objects.select_related('organization')
    if active_organization_only:
        if user is None or not user.is_authenticated:
            raise Http404
        projects = projects.filter(organization=user.active_organization)
    project = projects.filter(pk=pk).first()
    if project is None or not is_project_member(user, project):
        raise Http404
    return project


class ProjectMemberAPIMixin:
    """Our API views about one project (``<int:pk>``): signed-in users only, and ``get_project()``.

    The view still sets ``permission_required`` (Label Studio's declaration, see the module docstring).
    """

    permission_classes = [IsAuthenticated]
    project_url_kwarg = 'pk'
    active_organization_only = False  # True: the project must be in the user's active organization too

    def get_project(self):
        """The URL's project for a member of its organization, else 404 (like a missing project)."""
        pk = self.kwargs[self.project_url_kwarg]
        return member_project_or_404(self.request.user, pk, self.active_organization_only)


def action_refusal(project, kwargs):
    """A Data Manager action's 403 answer unless the requesting user is a member of the project's organization.

    Label Studio's ``/api/dm/actions`` checks only ``Project.has_permission``, which in the open-source
    edition lets members of another organization through; each of our actions calls this first.
    """
    request = kwargs.get('request')
    if not is_project_member(getattr(request, 'user', None), project):
        return {'response_code': 403, 'detail': NOT_A_MEMBER}
    return None
