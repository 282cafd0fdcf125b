"""The Compose Specification's JSON schema, checked with `jsonschema`, errors worded as
compose-go words them (schema/schema.go: the most specific error, its path dotted).

Owns: compiling the vendored schema (compose-spec.json, from compose-spec/compose-go
e70e961c3a schema/compose-spec.json, Apache-2.0: LICENSE.compose-spec beside it) once per
process and turning a failure into one line. Must not: be imported on any path but compose's
validation (jsonschema's import alone costs ~0.1 s).
"""

import json
import os
import re

_VALIDATOR = None


def _validator():
    global _VALIDATOR
    if _VALIDATOR is None:
        import jsonschema
        with open(os.path.join(os.path.dirname(__file__), "compose-spec.json")) as f:
            schema = json.load(f)
        cls = jsonschema.validators.validator_for(schema)
        _VALIDATOR = cls(schema)
    return _VALIDATOR


def _specificity(error):
    return len(error.absolute_path) + (1 if error.validator == "additionalProperties" else 0)


def _most_specific(error):
    """compose-go's getMostSpecificError: an error with causes stands for its most specific
    cause (the first of the deepest), never for itself."""
    if not error.context:
        return error
    return _first_deepest(error.context)


def _first_deepest(errors):
    best = None
    for error in errors:
        candidate = _most_specific(error)
        if best is None or _specificity(candidate) > _specificity(best):
            best = candidate
    return best


_TYPES = {"object": "mapping", "array": "array", "string": "string", "integer": "integer",
          "number": "number", "boolean": "boolean", "null": "null"}


def _words(error):
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "type":
        want = error.validator_value
        want = [want] if isinstance(want, str) else list(want)
        names = sorted(_TYPES.get(w, w) for w in want)
        kind = names[0] if len(names) == 1 else "%s or %s" % (", ".join(names[:-1]), names[-1])
        return "%s must be a %s" % (path, kind)
    if error.validator == "additionalProperties":
        schema = error.schema
        props = schema.get("properties", {})
        patterns = list(schema.get("patternProperties", {}))
        extra = [k for k in error.instance if k not in props and
                 not any(re.search(p, k) for p in patterns)]
        return "%s additional properties %s not allowed" % (
            path, ", ".join("'%s'" % k for k in extra))
    if error.validator == "minimum":
        return "%s must be greater than or equal to %s" % (path, error.validator_value)
    if error.validator == "maximum":
        return "%s must be less than or equal to %s" % (path, error.validator_value)
    if error.validator == "pattern":
        return "%s '%s' does not match pattern '%s'" % (path, error.instance,
                                                       error.validator_value)
    if error.validator == "enum":
        return "%s value must be one of %s" % (
            path, ", ".join(json.dumps(v) for v in error.validator_value))
    return ("%s %s" % (path, error.message)).strip()


def first_error(model):
    """-> None, or the one line compose-go prints for the model's most specific error."""
    errors = list(_validator().iter_errors(model))
    if not errors:
        return None
    return _words(_first_deepest(errors))
