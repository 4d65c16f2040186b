"""Capacity management (workstations, racks, cloud quotas, staffing) arrives with its own issue."""
