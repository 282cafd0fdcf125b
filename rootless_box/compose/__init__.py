"""Compose files as Docker Compose v2 reads them: the project model (pure, no ops calls).

yamlread (go-yaml's typing on PyYAML), template (interpolation, .env), merge (13-merge.md,
!reset/!override, uniqueness), schema (the vendored Compose Specification schema on
jsonschema), canonical (the normalized model and `config`'s output), loader (files, project
name, extends, include, profiles, consistency checks, the validation cache). Converging a
project through ops (up/down/ps/logs) comes with networks and health checks.
Must not: import ops, print, or exit.
"""
