"""Admin for service level management: arrives with the SLA engine issue."""
