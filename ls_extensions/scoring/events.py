"""Scoring's own signal: the store (``services``) asks for a recompute without importing ``jobs``.

``recompute_needed(sender=ScoringPolicy, project_id, reason)``: the stored rows do not hold the desired
version and measure; ``jobs`` answers with the queued ``RecomputeJob`` (``jobs.enqueue``).
``clusters_needed(sender=ScoringPolicy, project_id)``: diverse selection turned on; ``jobs`` queues the
clusters job if some task has no cluster (``jobs.queue_cluster_fill``).
"""

from django.dispatch import Signal

recompute_needed = Signal()
clusters_needed = Signal()
