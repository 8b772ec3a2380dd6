"""What must hold before the lifecycle moves on: validation, performance, estimate, environments,
approvals, backup, hooks, holds, and the controls that run them around each command."""
