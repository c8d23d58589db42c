"""Watching roots live: the file watcher, the tracker that keeps each file's last good state, the snapshot."""
