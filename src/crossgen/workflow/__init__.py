"""The interactive training workflow: loop, mixing, run store."""
