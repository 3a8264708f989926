"""The command line: one click group over the renderer's and the generator's commands."""
