"""A Compose project loaded as compose-go loads it: files, environment, name, model.

Owns: finding the files (compose.yaml & co. searched upward, the override file beside the
winner, COMPOSE_FILE split on COMPOSE_PATH_SEPARATOR), the environment interpolation reads (the
process's over `.env` / `--env-file`), the project name (-p > COMPOSE_PROJECT_NAME > `name:` >
the directory, normalized; an explicit bad name refused), the per-file pipeline (parse,
interpolate, include, extends, merge with `!reset`/`!override`, uniqueness, schema validation
of the merged model), profiles, the consistency checks (undefined services, networks, volumes,
secrets, configs; dependency cycles) and the canonical model. Schema validation is skipped for
a merged model already validated (a marker named by its digest under the cache directory):
jsonschema's import alone costs ~0.1 s.
Must not: print (warnings are returned in Project.warnings) or touch containers.
"""

import hashlib
import json
import os
import re

from ..errors import BoxError, NotFound
from . import canonical, merge, template, yamlread

FILE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
OVERRIDE_NAMES = ("compose.override.yml", "compose.override.yaml",
                  "docker-compose.override.yml", "docker-compose.override.yaml")


def _fail(message, hint=None):
    return BoxError(message, hint, exit_code=1)


class Options:
    """What the command line and the environment said (compose's global flags)."""

    def __init__(self, files=(), project_name=None, profiles=(), env_files=(),
                 project_directory=None, environ=None, cwd=None, interpolate=True,
                 cache_dir=None, consistency=True):
        self.files = list(files)
        self.project_name = project_name
        self.profiles = list(profiles)
        self.env_files = list(env_files)
        self.project_directory = project_directory
        self.environ = dict(os.environ if environ is None else environ)
        self.cwd = cwd or os.getcwd()
        self.interpolate = interpolate
        self.cache_dir = cache_dir
        self.consistency = consistency


class Project:
    def __init__(self, name, workdir, files, environment, model, warnings, profiles,
                 all_profiles):
        self.name = name
        self.workdir = workdir
        self.files = files
        self.environment = environment
        self.model = model
        self.warnings = warnings
        self.profiles = profiles
        self.all_profiles = all_profiles


def normalize_name(text):
    return "".join(re.findall("[a-z0-9_-]", text.lower())).lstrip("_-")


def _invalid_name(name):
    return _fail('invalid project name "%s": must consist only of lowercase alphanumeric '
                 'characters, hyphens, and underscores as well as start with a letter or number'
                 % name)


def find_files(start):
    """-> [winner, override?] searched upward from start, or []."""
    here = os.path.abspath(start)
    while True:
        found = [os.path.join(here, n) for n in FILE_NAMES
                 if os.path.isfile(os.path.join(here, n))]
        if found:
            overrides = [os.path.join(here, n) for n in OVERRIDE_NAMES
                         if os.path.isfile(os.path.join(here, n))]
            return found[:1] + overrides[:1]
        parent = os.path.dirname(here)
        if parent == here:
            return []
        here = parent


def _read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise NotFound("open %s: no such file or directory" % path, exit_code=1) from None
    except OSError as exc:
        raise _fail("failed to read %s: %s" % (path, exc.strerror)) from None
    except UnicodeDecodeError:
        raise _fail("failed to read %s: not UTF-8 text" % path) from None


def read_dotenv(path, environ):
    return template.parse_dotenv(_read(path), path, environ.get)


def load(opts):
    """-> Project, from Options."""
    warnings = []
    environ = dict(opts.environ)
    # COMPOSE_* may come from the working directory's .env (compose-go cli/options.go)
    workdir_guess = os.path.abspath(opts.project_directory or opts.cwd)
    env_files = opts.env_files
    if not env_files and not environ.get("COMPOSE_DISABLE_ENV_FILE"):
        candidate = os.path.join(workdir_guess, ".env")
        env_files = [candidate] if os.path.isfile(candidate) else []
    files = [os.path.abspath(os.path.join(opts.cwd, f)) if f != "-" else f for f in opts.files]
    dotenv = {}
    for path in env_files:
        dotenv.update(read_dotenv(os.path.join(opts.cwd, path), {**dotenv, **environ}))
    lookup_env = {**dotenv, **environ}
    if not files and lookup_env.get("COMPOSE_FILE"):
        sep = lookup_env.get("COMPOSE_PATH_SEPARATOR") or os.pathsep
        files = [os.path.abspath(os.path.join(workdir_guess, f))
                 for f in lookup_env["COMPOSE_FILE"].split(sep) if f]
    if not files:
        files = find_files(workdir_guess)
        if not files:
            raise NotFound("no configuration file provided: not found",
                           "run in a directory with a compose.yaml, or name one with -f",
                           exit_code=1)
    workdir = os.path.abspath(opts.project_directory) if opts.project_directory else \
        os.path.dirname(files[0])
    if workdir != workdir_guess and not opts.env_files and \
            not environ.get("COMPOSE_DISABLE_ENV_FILE"):
        candidate = os.path.join(workdir, ".env")
        env_files = [candidate] if os.path.isfile(candidate) else []
        dotenv = {}
        for path in env_files:
            dotenv.update(read_dotenv(path, {**dotenv, **environ}))
    environment = {**dotenv, **environ}
    texts = [(f, _read(f)) for f in files]

    name = opts.project_name or environment.get("COMPOSE_PROJECT_NAME") or None
    if name is not None:
        if normalize_name(name) != name:
            raise _invalid_name(name)
    else:
        for path, text in texts:
            for doc in yamlread.load_all(text, path):
                if isinstance(doc, dict) and isinstance(doc.get("name"), str):
                    name = doc["name"]
        if name is not None and opts.interpolate:
            name = template.substitute(name, environment.get, warnings)
        if name:
            if normalize_name(name) != name:
                raise _invalid_name(name)
        else:
            name = normalize_name(os.path.basename(workdir))
    environment["COMPOSE_PROJECT_NAME"] = name
    lookup = environment.get

    model = {}
    for path, text in texts:
        model = _load_file(model, path, text, lookup, warnings, opts, [path])
        if "version" in model:
            warnings.append("%s: the attribute `version` is obsolete, it will be ignored, "
                            "please remove it to avoid potential confusion" % path)
            del model["version"]
    model = merge.strip_tags(model)
    if not isinstance(model.get("services"), dict):
        model["services"] = {}
    all_profiles = sorted({p for s in model["services"].values() if isinstance(s, dict)
                           for p in s.get("profiles") or ()})
    profiles = opts.profiles or [p for p in (environment.get("COMPOSE_PROFILES") or "")
                                 .split(",") if p]
    model = canonical.normalize(model, name, workdir, lenient=not opts.interpolate)
    if opts.consistency:
        check(model)
    return Project(name, workdir, files, environment, model, warnings, profiles, all_profiles)


def _load_file(model, path, text, lookup, warnings, opts, chain):
    base_dir = os.path.dirname(path)
    data = {}
    for doc in yamlread.load_all(text, path):
        if not isinstance(doc, dict):
            raise _fail("validating %s: top-level object must be a mapping" % path)
        data = merge.merge(data, doc) if data else doc
    if opts.interpolate:
        data = template.interpolate(data, lookup, warnings)
    if data.get("include"):
        data = _include(data, base_dir, lookup, warnings, opts, chain)
    services = data.get("services")
    if isinstance(services, dict):
        for sname in list(services):
            services[sname] = _extends(sname, services, path, lookup, warnings, opts, [])
    model = merge.merge(model, data) if model else merge.strip_tags(data)
    model = merge.unique(model)
    validate(model, path, opts.cache_dir)
    return model


def _extends(name, services, path, lookup, warnings, opts, seen):
    svc = services.get(name)
    if not isinstance(svc, dict) or "extends" not in svc:
        return svc
    ext = svc["extends"]
    ref, ref_file = (ext, None) if isinstance(ext, str) else (ext.get("service"),
                                                               ext.get("file"))
    if not isinstance(ref, str):
        raise _fail("extends.%s.service is required" % name)
    key = (path, name)
    if key in seen:
        raise _fail("Circular reference with extends: %s" % " -> ".join(
            "%s in %s" % (n, p) for p, n in seen + [key]))
    if ref_file is not None:
        ref_path = os.path.normpath(os.path.join(os.path.dirname(path), ref_file))
        base_services = {}
        for doc in yamlread.load_all(_read(ref_path), ref_path):
            base_services.update((doc or {}).get("services") or {})
        if opts.interpolate:
            base_services = template.interpolate(base_services, lookup, warnings)
        if ref not in base_services:
            raise _fail('cannot extend service "%s" in %s: service "%s" not found in %s'
                        % (name, path, ref, ref_file))
        base = _extends(ref, base_services, ref_path, lookup, warnings, opts, seen + [key])
        base = merge.strip_tags(base or {})
        # paths of the base are relative to its own file
        base = json.loads(json.dumps(base))
        canonical.resolve_paths(base, os.path.dirname(ref_path))
    else:
        if ref not in services:
            raise _fail('cannot extend service "%s" in %s: service "%s" not found'
                        % (name, path, ref))
        base = _extends(ref, services, path, lookup, warnings, opts, seen + [key])
        base = merge.strip_tags(json.loads(json.dumps(merge.strip_tags(base or {}))))
    merged = merge.merge(base, svc, ("services", "x"))
    merged.pop("extends", None)
    return merged


def _include(data, base_dir, lookup, warnings, opts, chain):
    data = dict(data)
    includes = data.pop("include")
    for entry in includes:
        if isinstance(entry, str):
            entry = {"path": [entry]}
        paths = entry.get("path")
        paths = [paths] if isinstance(paths, str) else list(paths or [])
        paths = [os.path.normpath(os.path.join(base_dir, p)) for p in paths]
        proj_dir = os.path.normpath(os.path.join(base_dir, entry["project_directory"])) \
            if entry.get("project_directory") else os.path.dirname(paths[0])
        env = {}
        env_file = entry.get("env_file")
        env_files = [env_file] if isinstance(env_file, str) else list(env_file or [])
        if not env_files and os.path.isfile(os.path.join(proj_dir, ".env")):
            env_files = [os.path.join(proj_dir, ".env")]
        for f in env_files:
            env.update(read_dotenv(os.path.normpath(os.path.join(base_dir, f)), env))

        def sub_lookup(k, env=env):
            value = lookup(k)
            return value if value is not None else env.get(k)
        sub = {}
        for p in paths:
            if p in chain:
                # compose-go's lines, joined into one
                raise _fail("include cycle detected: %s include %s"
                            % (chain[0], " include ".join(chain[1:] + [p])))
            sub = _load_file(sub, p, _read(p), sub_lookup, warnings, opts, chain + [p])
        for svc in (sub.get("services") or {}).values():
            if isinstance(svc, dict):
                canonical.resolve_paths(svc, proj_dir)
        for kind in ("services", "networks", "volumes", "secrets", "configs"):
            for key, value in (sub.get(kind) or {}).items():
                if not isinstance(data.get(kind), dict):
                    data[kind] = {}
                mine = data[kind]
                if key in mine and mine[key] != value:
                    raise _fail("%s.%s conflicts with imported resource" % (kind, key))
                mine[key] = value
    return data


# -- validation ---------------------------------------------------------------------------

_SCHEMA = os.path.join(os.path.dirname(__file__), "compose-spec.json")


def _digest(model):
    text = json.dumps(model, sort_keys=True, default=repr, separators=(",", ":"))
    with open(_SCHEMA, "rb") as f:
        schema_id = hashlib.sha256(f.read()).hexdigest()[:16]
    return hashlib.sha256((schema_id + text).encode()).hexdigest()


def validate(model, path, cache_dir=None):
    """Raise the first (most specific) schema error as compose-go words it."""
    marker = None
    if cache_dir:
        marker = os.path.join(cache_dir, "compose-valid", _digest(model))
        if os.path.exists(marker):
            return
    from .schema import first_error
    error = first_error(model)
    if error:
        raise _fail("validating %s: %s" % (path, error),
                    "see the Compose Specification for this key")
    if marker:
        try:
            os.makedirs(os.path.dirname(marker), exist_ok=True)
            with open(marker, "w"):
                pass
        except OSError:
            pass  # a cache that cannot be written costs time, not correctness


def check(model):
    """compose-go loader/validate.go's consistency checks, worded as it words them."""
    services = model.get("services") or {}
    for name, svc in services.items():
        if "image" not in svc and "build" not in svc and "provider" not in svc:
            raise _fail('service "%s" has neither an image nor a build context specified: '
                        'invalid compose project' % name)
        if "network_mode" in svc and "networks" in svc:
            raise _fail("service %s declares mutually exclusive `network_mode` and `networks`:"
                        " invalid compose project" % name)
        for net in svc.get("networks") or {}:
            if net not in (model.get("networks") or {}):
                raise _fail('service "%s" refers to undefined network %s: invalid compose '
                            'project' % (name, net))
        for dep in svc.get("depends_on") or {}:
            if dep not in services and (svc["depends_on"][dep] or {}).get("required", True):
                raise _fail('service "%s" depends on undefined service "%s": invalid compose '
                            'project' % (name, dep))
        scale, replicas = svc.get("scale"), (svc.get("deploy") or {}).get("replicas")
        if scale is not None and replicas is not None and scale != replicas:
            raise _fail("services.%s: can't set distinct values on 'scale' and "
                        "'deploy.replicas': invalid compose project" % name)
        for key, value in (("scale", scale), ("deploy.replicas", replicas)):
            if value is not None and value < 0:
                raise _fail("services.%s.%s: must be greater than or equal to 0" % (name, key))
        if "container_name" in svc and (scale or replicas or 1) > 1:
            raise _fail("services.%s: can't set container_name and %s as container name must "
                        "be unique: invalid compose project"
                        % (name, "scale" if scale is not None else "deploy.replicas"))
        mode = svc.get("network_mode") or ""
        if mode.startswith("service:") and mode[8:] not in services:
            raise _fail("service \"%s\" not found for network_mode 'service:%s'"
                        % (mode[8:], mode[8:]))
        for vol in svc.get("volumes") or ():
            if vol.get("type") == "volume" and vol.get("source") and \
                    vol["source"] not in (model.get("volumes") or {}):
                raise _fail('service "%s" refers to undefined volume %s: invalid compose '
                            'project' % (name, vol["source"]))
        for kind in ("secrets", "configs"):
            for item in svc.get(kind) or ():
                if item.get("source") not in (model.get(kind) or {}):
                    raise _fail('service "%s" refers to undefined %s %s: invalid compose '
                                'project' % (name, kind[:-1], item.get("source")))
    _cycles(services)


def dependencies(svc):
    deps = list((svc.get("depends_on") or {}))
    mode = svc.get("network_mode") or ""
    if mode.startswith("service:"):
        deps.append(mode[8:])
    for vf in svc.get("volumes_from") or ():
        if not vf.startswith("container:"):
            deps.append(vf.split(":")[0])
    return deps


def _cycles(services):
    state = {}

    def visit(name, path):
        if state.get(name) == "done" or name not in services:
            return
        if name in path:
            i = path.index(name)
            raise _fail("dependency cycle detected: %s -> %s"
                        % (" -> ".join(path[i:]), name))
        for dep in dependencies(services[name]):
            visit(dep, path + [name])
        state[name] = "done"
    for name in sorted(services):
        visit(name, [])


def select(project, names=()):
    """The services `up`/`config` work on: those of the active profiles, plus the ones named
    (which enable their own profiles) and what they depend on. -> {name: service}."""
    services = project.model["services"]
    for n in names:
        if n not in services:
            raise _fail("no such service: %s" % n)
    active = set(project.profiles)
    for n in names:
        active.update(services[n].get("profiles") or ())

    def enabled(n):
        profs = services[n].get("profiles")
        return not profs or "*" in active or bool(active.intersection(profs))
    chosen = [n for n in services if enabled(n)] if not names else list(names)
    out, todo = {}, list(chosen)
    while todo:
        n = todo.pop()
        if n in out:
            continue
        out[n] = services[n]
        for dep in dependencies(services[n]):
            if dep in services:
                if not enabled(dep) and dep not in names:
                    if (services[n].get("depends_on") or {}).get(dep, {}).get("required",
                                                                              True):
                        raise _fail('service "%s" depends on undefined service "%s": invalid '
                                    'compose project' % (n, dep))
                    continue
                todo.append(dep)
    return {n: services[n] for n in sorted(out)}


def resolve_environment(project, services):
    """compose-go's WithServicesEnvironmentResolved(discard env files), as `config` and a
    container's start need it: a bare `environment` name takes the project environment's
    value, each `env_file` is read (its expansion sees the project environment, then the
    service's environment), `environment` wins over the files, and env_file is dropped.
    -> {name: service} (copies)."""
    out = {}
    for name, svc in services.items():
        svc = dict(svc)
        own = {}
        for key, value in (svc.get("environment") or {}).items():
            if value is None and key in project.environment:
                value = project.environment[key]
            own[key] = value
        merged = {}
        for entry in svc.pop("env_file", None) or ():
            path = entry["path"]
            if not os.path.isfile(path):
                if entry.get("required", True):
                    raise NotFound("env file %s not found: stat %s: no such file or directory"
                                   % (path, path), exit_code=1)
                continue

            def lookup(k, own=own):
                if k in project.environment:
                    return project.environment[k]
                return own.get(k)
            merged.update(template.parse_dotenv(_read(path), path, lookup))
        merged.update(own)
        if merged:
            svc["environment"] = dict(sorted(merged.items()))
        out[name] = svc
    return out
