"""The Celery application. Workers consume three queues (DESIGN.md §6): `timers` for SLA firing, kept free of slow
work; `default` for notifications and webhooks; `reports` for long exports."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "itsm.settings")

app = Celery("itsm")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
