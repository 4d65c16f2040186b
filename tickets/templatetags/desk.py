from datetime import datetime

from django import template
from django.utils.timesince import timesince

register = template.Library()


@register.filter
def age(value: datetime | None, now: datetime | None = None) -> str:
    """A ticket's age in its largest unit ("3 days", "18 hours"): a queue is scanned, not read."""
    if value is None:
        return ""
    return timesince(value, now, depth=1)
