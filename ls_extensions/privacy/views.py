"""Local answers for endpoints that Label Studio fills from the internet."""

from django.http import JsonResponse


def heidi_tips(request):
    """Label Studio's view fetches tips from GitHub on every call; we answer the way it answers
    when that fetch fails (air-gapped installs), without trying."""
    return JsonResponse({'detail': 'Tips are not fetched: this installation is offline.'}, status=404)
