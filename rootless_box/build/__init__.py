"""Dockerfile builds: the parser and shell-word expansion (pure), the .dockerignore matcher (pure), the instruction executor and the build cache."""
