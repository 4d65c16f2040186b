"""Admin for capacity management: arrives with its own issue."""
