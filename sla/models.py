"""Service level management (calendars, policies, clocks) arrives with the SLA engine issue."""
