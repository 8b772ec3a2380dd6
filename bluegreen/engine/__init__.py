"""SQLite mechanics: connections, capture and fence triggers, snapshot, replay, the barrier, migrations."""
