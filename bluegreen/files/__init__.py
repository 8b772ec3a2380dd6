"""The on-disk contract beside and inside the databases: pointer, journal, registry, layout, contract.

Both wings read it: the operator's side writes the pointer and journal; the client reads them."""
