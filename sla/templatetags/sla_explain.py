"""Filters for the SLA panel's Explain view (templates/sla/_explain.html)."""

from datetime import time

from django import template

from sla.selectors import format_short_duration

register = template.Library()


@register.filter
def business_duration(seconds: int | None) -> str:
    """`8040` → `2 h 14 m`; exact seconds stay in the markup next to it where they matter."""
    if seconds is None:
        return ""
    return format_short_duration(int(seconds))


@register.filter
def wall_windows(windows: tuple[tuple[time, time], ...]) -> str:
    """`((09:00, 12:00), (13:00, 17:00))` → `09:00–12:00, 13:00–17:00`; an end not after its start is the next day."""
    parts = []
    for start, end in windows:
        suffix = " (+1 day)" if end <= start and end != time(0) else ""
        end_text = "24:00" if end == time(0) else _wall(end)
        parts.append(f"{_wall(start)}–{end_text}{suffix}")
    return ", ".join(parts)


def _wall(value: time) -> str:
    return value.strftime("%H:%M:%S") if value.second else value.strftime("%H:%M")
