"""Who may touch a project through our endpoints and commands.

Label Studio's open-source ``Project.has_permission`` only rejects revoked memberships ("LSO always
runs a single organization"), so it lets a member of another organization through. Our endpoints
check membership of the project's organization explicitly.
"""


def is_project_member(user, project):
    """True when ``user`` is an active member of ``project``'s organization."""
    if user is None or not user.is_authenticated:
        return False
    organization = project.organization
    return organization is not None and organization.has_user(user) and not organization.has_deleted(user)


NOT_A_MEMBER = "Only members of the project's organization can run this action."


def action_refusal(project, kwargs):
    """A Data Manager action's 403 answer unless the requesting user is a member of the project's organization.

    Label Studio's ``/api/dm/actions`` checks only ``Project.has_permission``, which in the open-source
    edition lets members of another organization through; each of our actions calls this first.
    """
    request = kwargs.get('request')
    if not is_project_member(getattr(request, 'user', None), project):
        return {'response_code': 403, 'detail': NOT_A_MEMBER}
    return None
