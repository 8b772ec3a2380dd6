"""Read-only views for the operator: status, plan, history, generations, check, progress."""
