"""What retraining announces to other apps, as Django signals (so retraining imports none of them).

``model_version_changed(sender=TrainingRun, project_id, version)``: a run succeeded and the project now
uses ``version``; sent after the run's transaction commits. Scoring connects its ``reconcile`` to it.
Importing this module needs no installed app.
"""

from django.dispatch import Signal

model_version_changed = Signal()
