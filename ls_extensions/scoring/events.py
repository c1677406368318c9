"""Scoring's own signal: the store (``services``) asks for a recompute without importing ``jobs``.

``recompute_needed(sender=ScoringPolicy, project_id, reason)``: the stored rows do not hold the desired
version and measure; ``jobs`` answers with the queued ``RecomputeJob`` (``jobs.enqueue``).
"""

from django.dispatch import Signal

recompute_needed = Signal()
