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
