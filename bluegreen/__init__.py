"""bluegreen: blue-green schema cutover for SQLite."""

__version__ = "0.1.0"
