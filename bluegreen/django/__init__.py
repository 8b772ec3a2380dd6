"""A Django database backend that opens the generation the pointer names and follows it.

    DATABASES = {
        "default": {
            "ENGINE": "bluegreen.django",
            "NAME": BASE_DIR / "data" / "current.toml",  # the pointer, not a database file
            "OPTIONS": {"compatible": ["1.*", "2.*"]},  # optional: schema versions the code accepts
        }
    }

It is Django's own sqlite3 backend (bluegreen.django.base.DatabaseWrapper subclasses it), with the
file chosen and opened by bluegreen.client's machinery: without CREATE, checked for the
generation stamp the pointer promises and for `compatible=`, registered in the heartbeat
(`bluegreen status`, `finalize`). Beside it:

- **Following.** Each connection stays on one file. Before a statement outside a transaction,
  and at the start of an `atomic()` block, it checks (an integer compare until the pointer watch
  sees a swap) whether the pointer names another usable file; if so it closes and reconnects
  there — unless one of its cursors is still open (`QuerySet.iterator()` reads in chunks), since
  moving closes them. Request boundaries (CONN_MAX_AGE) do the same for idle persistent
  connections; with CONN_MAX_AGE = 0 every request opens the file the pointer names anyway.
- **Transactions begin IMMEDIATE** (Django's `transaction_mode` OPTION, default here
  "IMMEDIATE", not Django's DEFERRED): an `atomic()` block takes the write lock at BEGIN, so a
  cutover's fence cannot land inside it — the cutover waits for the block to commit (its
  catch-up then carries the block to green). Right after BEGIN the file is checked for a fence:
  a fenced file is left (rollback, wait for the pointer, reconnect, BEGIN again) before the
  block has run anything. An application without retry logic never sees a fence.
- **A write refused by the fence outside a transaction** changed nothing: it waits (at most
  `fence_timeout_s`) for the pointer to name a writable file, reconnects and runs once more.
- **A fence met inside a transaction** (only possible with transaction_mode "DEFERRED" or a
  BEGIN of the application's own) raises `FencedInTransaction`, a Django OperationalError:
  `atomic()` rolls the block back, nothing of it is committed; run it again.
- **A pointer or generation that cannot be used** (pointer missing or garbled, file missing,
  wrong stamp, a schema not `compatible`) raises `GenerationUnusable` naming the cause: a
  Django OperationalError for views and middleware, and a CommandError, so `manage.py` prints
  the message and exits instead of a traceback. A swap to such a file leaves a running
  connection where it is (reads go on); its next write meets the fence and raises it.

OPTIONS bluegreen reads (the rest go to sqlite3.connect as with Django's backend):
`compatible`, `fence_timeout_s` (30), `watch` (True: watchdog; False: polling only),
`poll_interval` (1.0 s), `heartbeat` (True), `sampling` (True: every statement's time per query
shape and generation for `bluegreen watch`, client/sampling.py; also off with
BLUEGREEN_SAMPLING=0), and `timeout` (seconds, the busy timeout: at least
the cutover pause budget; 10 by default). An in-memory NAME (Django's test runner) is passed to
Django's sqlite3 backend unchanged.
"""
