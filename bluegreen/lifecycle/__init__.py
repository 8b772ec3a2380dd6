"""The operator's commands as steps: the controller tells the story; builder, cutover and revert
are its parts, each handed the command's Run."""
