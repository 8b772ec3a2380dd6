"""What must hold before the lifecycle moves on: validation, performance, estimate, environments,
approvals, backup, hooks, holds, and the runner that calls them around each command."""
