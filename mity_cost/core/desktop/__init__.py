"""The desktop around the app: start at login and the health check (``doctor``)."""
