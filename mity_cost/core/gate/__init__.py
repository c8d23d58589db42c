"""The confirmation gate: thresholds and warning levels, the user's decisions, the socket protocol
and the fast path that hot commands take."""
