# The Celery app is loaded with Django, so that tasks sent from the web tier (shared_task) use it.
from smartmaint.celery import app as celery_app

__all__ = ("celery_app",)
