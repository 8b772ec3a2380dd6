"""Litestream replication of every generation that may be active, and of the pointer
(`bluegreen replicate`, `bluegreen restore`, the wait before a swap); docs/design.md, "Replication"."""
