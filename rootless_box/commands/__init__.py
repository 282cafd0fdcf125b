"""One small module per verb: parse arguments -> call ops -> format the result.

Each module has `command(verb, summary)` (its option table) and `main(parsed)` (returns the exit
code). Only this layer and cli.py write to stdout/stderr.
"""
