"""Local answers for endpoints that Label Studio fills from the internet."""

from django.http import JsonResponse


def heidi_tips(request):
    """Label Studio's view fetches tips from GitHub on every call; we answer without trying.

    The frontend (``fetch('/heidi-tips')`` on every page) keeps a JSON object of tip collections by name and
    falls back to its bundled tips while it has none; a 404 (what Label Studio answers offline) is a red
    console error on every page. An empty collection is a valid answer: no live tips, no error.
    """
    return JsonResponse({})
