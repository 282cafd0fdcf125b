"""Running a parsed Dockerfile: stages, instructions, the build cache, the resulting image.

Owns: Docker's semantics for each instruction (what goes in the image config, which
instructions make a layer, ARG scoping: global ARGs only in FROM unless declared again in the
stage, build args as RUN's environment, ENV and ARG expansion in the instructions Docker
expands), multi-stage (only the stages the target needs are built), and the cache: each step's
key is its parent image, the instruction after expansion, the build args it uses and, for COPY
and ADD, the content of what it copies (never mtimes). Every step's result is an ordinary
untagged image, so the cache is cleaned by `image prune`. Reproducible by default: one epoch
(SOURCE_DATE_EPOCH, --timestamp, else DEFAULT_EPOCH) is every new config's and history
entry's time and clamps (or, for --timestamp, sets) the mtimes in every new layer.
Must not: print (progress goes through the `emit` callback) or touch files itself: RUN and COPY
go through ops/buildsteps.py.
"""

import hashlib
import os

from .. import errors, fastjson
from ..oci import image as oci_image
from ..oci import reference
from ..ops import buildsteps, images
from . import parser, runmount
from .shell import ExpansionError, expand_word, expand_words

DEFAULT_SHELL = ["/bin/sh", "-c"]
# 1980-01-01T00:00:00Z: the time of a build without SOURCE_DATE_EPOCH or --timestamp. Not 0:
# the earliest a ZIP (DOS) timestamp can hold, so a later step that zips files of the image
# (jar, wheel, zipfile.ZipFile.write) does not fail on them, and no tool mistakes it for
# "no time" as some do 0.
DEFAULT_EPOCH = 315532800
_PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
               "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")


class BuildError(errors.BoxError):
    """A build that cannot go on: `docker build` exits 1."""

    exit_code = 1


class BuildOptions:
    def __init__(self, context, dockerfile=None, dockerfile_text=None, tags=(),
                 build_args=None, target=None, no_cache=False, labels=None, quiet=False,
                 network="host", secrets=None, pull=None, pull_always=False,
                 source_date_epoch=None, timestamp=None, add_hosts=(),
                 no_cache_filter=(), build_contexts=None, cache_from=(), cache_to=()):
        self.context = os.path.abspath(context)
        self.dockerfile = dockerfile or os.path.join(self.context, "Dockerfile")
        self.dockerfile_text = dockerfile_text
        self.tags = list(tags)
        self.build_args = dict(build_args or {})
        self.target = target
        self.no_cache = no_cache
        self.labels = dict(labels or {})
        self.quiet = quiet
        self.network = network
        self.secrets = dict(secrets or {})  # --secret id -> bytes (RUN --mount=type=secret)
        self.ssh = {}  # --ssh id -> an agent's socket path (RUN --mount=type=ssh)
        # pull(store, idmap, name, missing): fetch an image (commands/ show the progress, and
        # say when it was missing); pull_always: --pull, bases are fetched even when present
        self.pull = pull
        self.pull_always = pull_always
        # seconds since the epoch: SOURCE_DATE_EPOCH clamps the layers' mtimes (BuildKit),
        # timestamp sets them all (buildah's --timestamp); both are the configs' time
        self.source_date_epoch = source_date_epoch
        self.timestamp = timestamp
        self.add_hosts = list(add_hosts)  # --add-host NAME:IP, in RUN steps' /etc/hosts
        # --no-cache-filter: the stages (by name) whose steps run again whatever the cache has
        self.no_cache_filter = {n.lower() for n in no_cache_filter}
        # --build-context NAME=VALUE: what FROM NAME and COPY --from=NAME mean instead
        self.build_contexts = dict(build_contexts or {})
        # --cache-from/--cache-to: parsed targets (ops/buildcache.parse) of step images
        self.cache_from = list(cache_from)
        self.cache_to = list(cache_to)


class _State:
    """A stage's image so far: its config, layers, and the ID of the image recorded last."""

    def __init__(self, config, layers, image_id, key):
        self.config = config
        self.layers = layers  # [(media type, digest, size)]
        self.image_id = image_id
        self.key = key  # cache chain: the parent's key for the next step
        self.args = {}
        self.cmd_set = False  # a CMD in this stage survives a later ENTRYPOINT

    @property
    def runtime(self):
        return self.config.setdefault("config", {})

    @property
    def diff_ids(self):
        return self.config.setdefault("rootfs", {"type": "layers", "diff_ids": []})["diff_ids"]

    def env_map(self):
        return dict(e.split("=", 1) if "=" in e else (e, "") for e in
                    self.runtime.get("Env") or [])


def _scratch():
    config = {"architecture": oci_image.host_arch(), "os": "linux", "config": {},
              "rootfs": {"type": "layers", "diff_ids": []}, "history": []}
    return _State(config, [], None, "scratch")


class Builder:
    def __init__(self, store, idmap, opts, emit):
        self.store = store
        self.idmap = idmap
        self.opts = opts
        self.emit = emit
        self.stage_results = {}
        self.cache = {} if opts.no_cache else _read_cache(store)
        self.new_cache = {}
        self.used_build_args = set()
        self._matcher = None
        self._downloads = []
        self._known = None
        self._stage_name = ""
        self._resolved_contexts = {}
        self.cache_sources = []
        if opts.cache_from and not opts.no_cache:
            from ..ops import buildcache
            self.cache_sources = [buildcache.source(c) for c in opts.cache_from]
        self.times, self.created = build_times(opts)

    # -- the whole build -------------------------------------------------------------------
    def build(self):
        try:
            image_id = self._build()
            if self.opts.cache_to:
                from ..ops import buildcache
                for target in self.opts.cache_to:
                    buildcache.export(self.store, self.new_cache, target)
            return image_id
        finally:
            # steps that succeeded stay cached, also when a later step failed
            _cache_save(self.store, self.new_cache)
            if self._known is not None:
                _save_known(self.store, self.opts.context, self._known)
            for tmp in self._downloads:
                self.store.remove(tmp)

    def _build(self):
        text = self.opts.dockerfile_text
        if text is None:
            try:
                with open(self.opts.dockerfile, "rb") as f:
                    text = f.read()
            except OSError as exc:
                raise BuildError("cannot read the Dockerfile %s: %s"
                                 % (self.opts.dockerfile, exc.strerror),
                                 "give its path with -f") from None
        df = parser.parse(text, os.path.basename(self.opts.dockerfile))
        self.escape = df.escape
        global_args, stages = _split_stages(df.instructions)
        # BuildKit's automatic platform ARGs: in FROM lines, and in a stage that declares them
        self.global_args = platform_args()
        for ins in global_args:
            self._declare_args(ins, self.global_args, self.global_args)
        target = self._target_index(stages)
        needed = self._needed(stages, target)
        self.stages = stages
        total = sum(1 + len(stages[i]["body"]) for i in needed)
        self.step = 0
        self.total = total
        for index in needed:
            self.stage_results[index] = self._build_stage(stages[index])
        final = self.stage_results[target]
        for name, value in self.opts.labels.items():
            final.runtime.setdefault("Labels", {})
            final.runtime["Labels"] = dict(final.runtime["Labels"] or {}, **{name: value})
        image_id = self._record(final, final.key + "|labels:" + fastjson.dumps(
            self.opts.labels).decode()) if self.opts.labels else final.image_id
        if image_id is None:
            image_id = self._record(final, final.key + "|final")
        unused = set(self.opts.build_args) - self.used_build_args - set(_PROXY_ARGS) - {
            "SOURCE_DATE_EPOCH"}
        if unused:
            self.emit("warning", "one or more build args were not consumed: %s"
                      % ", ".join(sorted(unused)))
        refs = [reference.parse(tag) for tag in self.opts.tags]
        with self.store.lock():
            index = self.store.read_index()
            for ref in refs:
                index["tags"][str(ref)] = image_id
            self.store.write_index(index)
        # dockerd's events of a build (BuildKit's exporter callbacks, daemon/build.go):
        # create for the image, then tag for each name; moby has no "build" action
        from ..ops import events
        events.emit(self.store, "image", "create", image_id, {"name": image_id})
        for ref in refs:
            events.emit(self.store, "image", "tag", image_id, {"name": ref.familiar()})
        return image_id

    def _target_index(self, stages):
        if not self.opts.target:
            return len(stages) - 1
        for i, stage in enumerate(stages):
            if stage["name"] == self.opts.target.lower():
                return i
        raise BuildError("target stage %r could not be found" % self.opts.target)

    def _needed(self, stages, target):
        """Only the stages the target depends on (FROM <stage>, COPY --from=<stage|index>)."""
        names = {s["name"]: i for i, s in enumerate(stages) if s["name"]}
        seen = set()

        def visit(i):
            if i in seen:
                return
            seen.add(i)
            base = self._expand_from(stages[i]["from"])[0].lower()
            if base in names and names[base] < i:
                visit(names[base])
            scope = {}  # the stage's ARGs so far: `--from=$STAGE` names a stage too
            for ins in stages[i]["body"]:
                if ins.cmd == "arg":
                    self._arg_values(ins, scope)
                    continue
                refs = [f[len("--from="):] for f in ins.flags if f.startswith("--from=")]
                for ref in refs + runmount.from_stage_names(ins.flags):
                    try:
                        ref = expand_word(ref, scope, self.escape).lower()
                    except ExpansionError:
                        continue  # a bad expansion is reported when the step runs
                    if ref in names:
                        visit(names[ref])
                    elif ref.isdigit() and int(ref) < i:
                        visit(int(ref))
        visit(target)
        return sorted(seen)

    def _arg_values(self, ins, scope):
        """What an ARG will hold, for planning only (_declare_args does it for real): a
        build arg, else its default, else the global ARG of that name."""
        for word in ins.args:
            name, eq, default = word.partition("=")
            if name in self.opts.build_args:
                value = self.opts.build_args[name]
            elif eq:
                try:
                    value = expand_word(default, scope, self.escape)
                except ExpansionError:
                    value = None
            else:
                value = self.global_args.get(name)
            if value is not None:
                scope[name] = value

    # -- a stage -----------------------------------------------------------------------------
    def _expand_from(self, ins):
        env = {k: v for k, v in self.global_args.items() if v is not None}
        words = [expand_word(a, env, self.escape) for a in ins.args]
        return words

    def _build_stage(self, stage):
        self._stage_name = stage["name"]
        ins = stage["from"]
        words = self._expand_from(ins)
        base = words[0]
        self._announce(ins, "FROM " + " ".join(words))
        names = {s["name"]: i for i, s in enumerate(self.stages) if s["name"]}
        named = self.named_context(base)
        if named is not None and named["kind"] == "dir":
            state = self._from_directory(named)
        elif named is not None:
            state = self._state_of(named["image"])
        elif base.lower() == "scratch":
            state = _scratch()
        elif base.lower() in names and names[base.lower()] in self.stage_results:
            parent = self.stage_results[names[base.lower()]]
            state = _State(fastjson.loads(fastjson.dumps(parent.config)), list(parent.layers),
                           parent.image_id, parent.key)
        else:
            state = self._from_image(ins, base)
        triggers = list(state.runtime.get("OnBuild") or [])
        if triggers:
            # the base's ONBUILD triggers run first and are not inherited (Docker): cleared
            # before they run, so no image this build records carries them
            state.runtime["OnBuild"] = None
            state.key = _key(state.key, "ONBUILD cleared")
        # the epoch changes every layer and config this build makes
        state.key = _key(state.key, "times", repr(self.times))
        for trigger in triggers:
            for nested in parser.parse(trigger, "ONBUILD").instructions:
                self._instruction(state, nested, onbuild=True)
        for ins in stage["body"]:
            self._instruction(state, ins)
        return state

    def resolve_image(self, name, always=False):
        """A local image by name, pulled first when it is missing (or always, for --pull)
        and the build may pull."""
        missing = True
        if not (always and self.opts.pull):
            try:
                return images.resolve(self.store, name)
            except errors.NotFound:
                if self.opts.pull is None or reference.looks_like_id(name):
                    raise
        else:
            missing = False
        reference.parse(name)  # an ID or a malformed name is not pulled
        self.opts.pull(self.store, self.idmap, name, missing)
        return images.resolve(self.store, name)

    def _from_image(self, ins, name):
        try:
            image = self.resolve_image(name, always=self.opts.pull_always)
        except (errors.NotFound, errors.RegistryError, errors.UsageError) as exc:
            where = "%s:%d" % (os.path.basename(self.opts.dockerfile), ins.start_line)
            if isinstance(exc, errors.NotFound) and self.opts.pull is None:
                raise BuildError("%s: base image %s not found" % (where, name),
                                 "import, load or pull it first") from None
            raise BuildError("%s: base image %s: %s" % (where, name, exc.message),
                             exc.hint) from None
        return self._state_of(image)

    def _state_of(self, image):
        images.ensure_unpacked(self.store, self.idmap, image)
        config = fastjson.loads(fastjson.dumps(image.config))
        return _State(config, images.manifest_layers(self.store, image), image.id, image.id)

    # -- --build-context ---------------------------------------------------------------------
    def named_context(self, name):
        """--build-context NAME=VALUE for FROM NAME and COPY --from=NAME, resolved once:
        {"kind": "image", "image"} (docker-image://, oci-layout://) or {"kind": "dir",
        "path", "key"}; None when NAME is no build context."""
        value = self.opts.build_contexts.get(name.lower())
        if value is None:
            return None
        resolved = self._resolved_contexts.get(name.lower())
        if resolved is None:
            from ..ops.buildcontexts import resolve
            resolved = resolve(self.store, self.idmap, name, value, self.resolve_image)
            if resolved["kind"] == "dir":
                # by content, as the main context's files are keyed (never mtimes)
                from .context import content_key
                resolved["key"] = content_key(resolved["path"], ["."])
            self._resolved_contexts[name.lower()] = resolved
        return resolved

    def _from_directory(self, named):
        """FROM a local directory context: an image of one layer holding the directory."""
        from . import context as ctx
        state = _scratch()
        state.key = _key("context-dir", named["key"], repr(self.times))
        if self._cached(state, state.key):
            return state
        walk = [p for p, _st in ctx.walk(named["path"], None, ".")]
        plan = [{"kind": "copy", "from_other": False, "root": named["path"],
                 "sources": [(".", True, ".")], "walk": {".": walk}, "dest": "/",
                 "dest_is_dir": True, "uid": 0, "gid": 0, "mode": None, "names": None}]
        report = buildsteps.copy_step(self.store, self.idmap, [], plan, times=self.times)
        self._add_layer(state, state.key, "COPY %s in /" % named["key"][:19], report)
        return state

    # -- instructions ------------------------------------------------------------------------
    def _announce(self, ins, text):
        self.step += 1
        self.emit("step", "STEP %d/%d: %s" % (self.step, self.total, text))

    def _instruction(self, state, ins, onbuild=False):
        cmd = ins.cmd
        env = dict(state.env_map())
        for name, value in state.args.items():
            if value is not None and name not in env:
                env[name] = value
        handler = getattr(self, "_do_" + cmd, None)
        if handler is None:
            raise BuildError("%s:%d: unsupported instruction: %s" % (
                os.path.basename(self.opts.dockerfile), ins.start_line, cmd.upper()))
        if not onbuild:
            self._announce(ins, ins.original.strip())
        try:
            handler(state, ins, env)
        except errors.BoxError as exc:
            if isinstance(exc, parser.DockerfileError) or exc.message.startswith(
                    os.path.basename(self.opts.dockerfile) + ":"):
                raise
            raise BuildError("%s:%d: %s" % (os.path.basename(self.opts.dockerfile),
                                            ins.start_line, exc.message),
                             exc.hint) from None

    def _expand(self, word, env):
        return expand_word(word, env, self.escape)

    def _metadata(self, state, ins, description, change, key_data=None):
        """A step that changes only the config: no layer, an empty_layer history entry.
        key_data: what the step sets, when its description text is ambiguous (ENV A="x B=y"
        and ENV A=x B=y print alike)."""
        key = _key(state.key, ins.cmd, fastjson.dumps(key_data).decode()
                   if key_data is not None else description)
        if self._cached(state, key):
            return
        change(state.runtime)
        self._history(state, description, empty=True)
        state.image_id = self._record(state, key)
        state.key = key

    def _cached(self, state, key):
        if self._stage_name in self.opts.no_cache_filter:
            return False
        image = None
        image_id = self.cache.get(key)
        if image_id:
            try:
                image = images.resolve(self.store, image_id)
            except errors.BoxError:
                image = None
        for source in self.cache_sources:
            if image is not None:
                break
            image = source.load(self.store, self.idmap, key)  # --cache-from
        if image is None:
            return False
        images.ensure_unpacked(self.store, self.idmap, image)
        state.config = fastjson.loads(fastjson.dumps(image.config))
        state.layers = images.manifest_layers(self.store, image)
        state.image_id = image.id
        state.key = key
        self.new_cache[key] = image.id
        self.emit("cached", "--> CACHED %s" % image.id[7:19])
        return True

    def _history(self, state, created_by, empty=False):
        entry = {"created": self.created, "created_by": created_by}
        if empty:
            entry["empty_layer"] = True
        state.config.setdefault("history", []).append(entry)
        state.config["created"] = entry["created"]

    def _record(self, state, key):
        with self.store.lock():
            image_id = images.record_image(self.store, state.config, state.layers,
                                           state.diff_ids, None, content_size=sum(
                                               s for _m, _d, s in state.layers))
        self.new_cache[key] = image_id
        return image_id

    def _add_layer(self, state, key, description, report):
        state.layers.append((oci_image.MT_LAYER["none"], report["diff_id"], report["size"]))
        state.diff_ids.append(report["diff_id"])
        self._history(state, description)
        state.image_id = self._record(state, key)
        state.key = key
        self.emit("done", "--> %s" % state.image_id[7:19])

    def fetch(self, url, checksum):
        tmp, name, digest = buildsteps.fetch_url(self.store, url, checksum)
        self._downloads.append(tmp)
        return tmp, name, digest

    def known_files(self):
        """Content digests of this context's files from the last build, by stat signature."""
        if self._known is None:
            self._known = _read_known(self.store).get(self.opts.context, {})
        return self._known

    def context_matcher(self):
        if self._matcher is None:
            from .context import load_ignore
            self._matcher = load_ignore(self.opts.context, self.opts.dockerfile)
        return self._matcher

    def _layer_dirs(self, state):
        return images.layer_dirs(self.store, state.diff_ids)

    # ENV, LABEL: (key, value, separator) triples
    def _pairs(self, ins, env):
        args = ins.args
        return [(self._expand(args[i], env), self._expand(args[i + 1], env))
                for i in range(0, len(args) - 2, 3)]

    def _do_env(self, state, ins, env):
        pairs = self._pairs(ins, env)

        def change(cfg):
            current = [e for e in cfg.get("Env") or []]
            for key, value in pairs:
                current = [e for e in current if e.split("=", 1)[0] != key]
                current.append("%s=%s" % (key, value))
            cfg["Env"] = current
        self._metadata(state, ins, "ENV " + " ".join("%s=%s" % p for p in pairs), change,
                       pairs)

    def _do_label(self, state, ins, env):
        pairs = self._pairs(ins, env)

        def change(cfg):
            labels = dict(cfg.get("Labels") or {})
            labels.update(pairs)
            cfg["Labels"] = labels
        self._metadata(state, ins, "LABEL " + " ".join("%s=%s" % p for p in pairs), change,
                       pairs)

    def _do_maintainer(self, state, ins, env):
        author = " ".join(ins.args)

        def change(cfg):
            state.config["author"] = author
            cfg["Labels"] = dict(cfg.get("Labels") or {}, maintainer=author)
        self._metadata(state, ins, "MAINTAINER " + author, change)

    def _do_arg(self, state, ins, env):
        self._declare_args(ins, state.args, self.global_args, env)
        self._metadata(state, ins, "ARG " + " ".join(ins.args), lambda cfg: None)

    def _declare_args(self, ins, target, global_args, env=None):
        """ARG: a build arg wins, else the default (expanded with what is visible here: the
        global ARGs before FROM; in a stage, its ENV and the ARGs declared so far), else the
        global ARG of that name."""
        scope = dict(env) if env is not None else {
            k: v for k, v in global_args.items() if v is not None}
        for word in ins.args:
            name, eq, default = word.partition("=")
            if name in self.opts.build_args:
                value = self.opts.build_args[name]
                self.used_build_args.add(name)
            elif eq:
                value = expand_word(default, scope, self.escape)
            else:
                value = global_args.get(name)
            target[name] = value
            if value is not None and name not in (env or {}):
                scope[name] = value

    def _do_workdir(self, state, ins, env):
        path = self._expand(ins.args[0], env)
        if not path.startswith("/"):
            path = os.path.join(state.runtime.get("WorkingDir") or "/", path)
        path = os.path.normpath(path)
        state.runtime["WorkingDir"] = path
        from ..layers.diff import LowerView
        if path == "/" or LowerView(self._layer_dirs(state)).lstat(path.lstrip("/")):
            self._metadata(state, ins, "WORKDIR " + path,
                           lambda cfg: cfg.update(WorkingDir=path))
            return
        # BuildKit creates a missing WORKDIR, and the parents it lacks, 0755 and owned by
        # the current USER (dispatchWorkdir: a Mkdir with parents and the user): a small layer
        user = state.runtime.get("User") or ""
        key = _key(state.key, "WORKDIR", path, "mkdir", *([user] if user else []))
        if self._cached(state, key):
            return
        from .copyplan import owner
        uid, gid = owner(self, state, user)
        report = buildsteps.copy_step(self.store, self.idmap, self._layer_dirs(state),
                                      [{"kind": "mkdir", "dest": path, "uid": uid,
                                        "gid": gid}], times=self.times)
        self._add_layer(state, key, "WORKDIR " + path, report)

    def _do_user(self, state, ins, env):
        user = self._expand(ins.args[0], env)
        self._metadata(state, ins, "USER " + user, lambda cfg: cfg.update(User=user))

    def _do_stopsignal(self, state, ins, env):
        sig = self._expand(ins.args[0], env)
        self._metadata(state, ins, "STOPSIGNAL " + sig, lambda cfg: cfg.update(StopSignal=sig))

    def _do_expose(self, state, ins, env):
        ports = [p if "/" in p else p + "/tcp" for a in ins.args
                 for p in expand_words(a, env, self.escape)]
        self._metadata(state, ins, "EXPOSE " + " ".join(ports), lambda cfg: cfg.update(
            ExposedPorts=dict(cfg.get("ExposedPorts") or {}, **{p: {} for p in ports})))

    def _do_volume(self, state, ins, env):
        vols = [self._expand(a, env) for a in ins.args]
        self._metadata(state, ins, "VOLUME " + " ".join(vols), lambda cfg: cfg.update(
            Volumes=dict(cfg.get("Volumes") or {}, **{v: {} for v in vols})), vols)

    def _command(self, state, ins):
        if ins.json:
            return list(ins.args)
        shell = state.runtime.get("Shell") or DEFAULT_SHELL
        return list(shell) + [ins.args[0]]

    def _do_cmd(self, state, ins, env):
        argv = self._command(state, ins)
        state.cmd_set = True
        self._metadata(state, ins, "CMD " + fastjson.dumps(argv).decode(),
                       lambda cfg: cfg.update(Cmd=argv))

    def _do_entrypoint(self, state, ins, env):
        argv = self._command(state, ins)

        reset = not state.cmd_set

        def change(cfg):
            cfg["Entrypoint"] = argv
            if reset:
                cfg["Cmd"] = None  # Docker: ENTRYPOINT resets a CMD inherited from the base
        self._metadata(state, ins, "ENTRYPOINT " + fastjson.dumps(argv).decode(), change,
                       [argv, reset])

    def _do_shell(self, state, ins, env):
        if not ins.json:
            raise BuildError("SHELL requires the arguments to be in JSON form")
        self._metadata(state, ins, "SHELL " + fastjson.dumps(ins.args).decode(),
                       lambda cfg: cfg.update(Shell=list(ins.args)))

    def _do_onbuild(self, state, ins, env):
        trigger = ins.original.strip()[len("ONBUILD"):].strip()
        self._metadata(state, ins, "ONBUILD " + trigger, lambda cfg: cfg.update(
            OnBuild=list(cfg.get("OnBuild") or []) + [trigger]))

    def _do_healthcheck(self, state, ins, env):
        flags = dict(f[2:].split("=", 1) for f in ins.flags if "=" in f)
        if ins.args and ins.args[0].upper() == "NONE" and not ins.json:
            check = {"Test": ["NONE"]}
        else:
            cmd = ins.args[1:] if ins.args and ins.args[0].upper() == "CMD" else ins.args
            check = {"Test": (["CMD"] + list(cmd)) if ins.json else ["CMD-SHELL", cmd[0]]}
            for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                              ("start-period", "StartPeriod"),
                              ("start-interval", "StartInterval")):
                if flag in flags:
                    check[key] = _duration_ns(flags[flag])
            if "retries" in flags:
                if not flags["retries"].isdigit():
                    raise errors.UsageError("invalid --retries %r: give a number"
                                            % flags["retries"])
                check["Retries"] = int(flags["retries"])
        self._metadata(state, ins, "HEALTHCHECK " + fastjson.dumps(check).decode(),
                       lambda cfg: cfg.update(Healthcheck=check))

    def _do_run(self, state, ins, env):
        flags = _flags(ins)
        for flag in flags:
            if flag not in ("network", "mount"):
                # --security...: ignoring it would run a different step
                raise errors.UsageError("RUN --%s is not supported yet" % flag)
        network = flags.get("network", self.opts.network)
        mounts, mount_keys = [], []
        for flag in ins.flags:
            if flag.startswith("--mount="):
                spec = runmount.parse(self._expand(flag[len("--mount="):], env))
                desc, key_part = runmount.describe(self, spec, state.runtime.get(
                    "WorkingDir") or "/", sum(m["kind"] == "ssh" for m in mounts))
                mounts.append(desc)
                mount_keys.append(key_part)
        if ins.heredocs and not ins.json and ins.args[0].strip().startswith("<<"):
            # RUN <<EOF: the heredoc is the script
            body = ins.heredocs[0].content
            argv = list(state.runtime.get("Shell") or DEFAULT_SHELL) + [body]
        elif ins.heredocs and not ins.json:
            # cmd <<EOF: the shell reads the heredoc itself
            text = ins.args[0] + "\n" + "".join(h.content + h.name + "\n"
                                                for h in ins.heredocs)
            argv = list(state.runtime.get("Shell") or DEFAULT_SHELL) + [text]
        else:
            argv = self._command(state, ins)
        build_env = {k: v for k, v in state.args.items() if v is not None}
        # Docker's predefined proxy ARGs reach RUN without an ARG line, and stay out of the
        # cache key and the history (they change with the network, not the image)
        proxies = {k: v for k, v in self.opts.build_args.items() if k in _PROXY_ARGS}
        run_env = dict(proxies, **build_env)
        run_env.update(state.env_map())
        agents = [m for m in mounts if m["kind"] == "ssh" and m["socket"]]
        if agents and "SSH_AUTH_SOCK" not in run_env:
            run_env["SSH_AUTH_SOCK"] = agents[0]["target"]  # BuildKit's: the first one
        used = sorted(k for k in build_env if k in self.opts.build_args)
        self.used_build_args.update(used)
        key = _key(state.key, "RUN " + fastjson.dumps(argv).decode(),
                   fastjson.dumps(sorted(build_env.items())).decode(), network,
                   *([fastjson.dumps(mount_keys).decode()] if mount_keys else []),
                   *(["hosts:" + "\n".join(self.opts.add_hosts)] if self.opts.add_hosts
                     else []))
        if self._cached(state, key):
            return
        if "PATH" not in run_env:
            from ..config import DEFAULT_PATH
            run_env["PATH"] = DEFAULT_PATH
        # The layer's mtimes are clamped to the epoch, so every RUN is told it, as the
        # reproducible-builds convention says: tools that know it make outputs that do not
        # depend on mtimes. Python's py_compile and compileall (dpkg's py3compile, pip) then
        # write hash-checked .pyc files; timestamp-checked ones would name the source's
        # mtime before the clamp, turn stale in the layer, and be compiled again (and
        # written) by every later step and container that imports them.
        run_env.setdefault("SOURCE_DATE_EPOCH", str(self.times.epoch))
        report = buildsteps.run_step(
            self.store, self.idmap, self._layer_dirs(state), argv,
            ["%s=%s" % kv for kv in run_env.items()], state.runtime.get("WorkingDir") or "/",
            state.runtime.get("User") or "", network, quiet=self.opts.quiet, mounts=mounts,
            times=self.times, add_hosts=self.opts.add_hosts)
        shell = state.runtime.get("Shell") or DEFAULT_SHELL
        shown = " ".join(argv[len(shell):]) if not ins.json else " ".join(argv)
        if used:
            shown = "|%d %s %s" % (len(used), " ".join("%s=%s" % (k, build_env[k])
                                                        for k in used), shown)
        self._add_layer(state, key, "RUN " + shown, report)

    def _do_copy(self, state, ins, env):
        self._copy(state, ins, env, "COPY")

    def _do_add(self, state, ins, env):
        self._copy(state, ins, env, "ADD")

    def _copy(self, state, ins, env, what):
        from . import copyplan
        plan, content_key, other = copyplan.plan(self, state, ins, env, what)
        key = _key(state.key, what, fastjson.dumps(ins.flags).decode(), content_key)
        if self._cached(state, key):
            return
        report = buildsteps.copy_step(self.store, self.idmap, self._layer_dirs(state), plan,
                                      other, copyplan.resolve_in, self.times)
        dests = ", ".join(item["dest"] for item in plan)
        self._add_layer(state, key, "%s %s in %s" % (what, content_key[:19], dests), report)


def build_times(opts):
    """-> (layers.diff.Times, the configs' "created") for this build: --timestamp sets every
    mtime, SOURCE_DATE_EPOCH (given by the caller, else as a build arg, BuildKit's way)
    clamps them, else DEFAULT_EPOCH clamps them. A given SOURCE_DATE_EPOCH is also the build
    arg of that name, as in BuildKit and buildah (an ARG SOURCE_DATE_EPOCH sees it)."""
    import time
    from ..layers.diff import Times
    epoch, clamp = opts.timestamp, False
    if epoch is None:
        clamp = True
        epoch = opts.source_date_epoch
        if epoch is None and "SOURCE_DATE_EPOCH" in opts.build_args:
            epoch = parse_epoch(opts.build_args["SOURCE_DATE_EPOCH"],
                                "--build-arg SOURCE_DATE_EPOCH")
        elif epoch is not None:
            opts.build_args.setdefault("SOURCE_DATE_EPOCH", str(epoch))
    if epoch is None:
        epoch = DEFAULT_EPOCH
    return Times(epoch, clamp), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def parse_epoch(text, what):
    """Seconds since 1970 as SOURCE_DATE_EPOCH and --timestamp take them."""
    text = str(text).strip()
    if not text.isdigit() or int(text) > 253402300799:  # year 9999: Go's RFC 3339 ends there
        raise errors.UsageError("invalid %s %r: give seconds since 1970-01-01 UTC" % (
            what, text), "for instance $(git log -1 --format=%ct)")
    return int(text)


def platform_args():
    arch = oci_image.host_arch()
    variant = "v8" if arch == "arm64" else ""
    platform = "linux/%s%s" % (arch, "/" + variant if variant else "")
    values = {}
    for prefix in ("TARGET", "BUILD"):
        values.update({prefix + "PLATFORM": platform, prefix + "OS": "linux",
                       prefix + "ARCH": arch, prefix + "VARIANT": variant})
    return values


def _split_stages(instructions):
    """-> (ARG instructions before the first FROM, [{"from", "name", "body"}])."""
    global_args, stages = [], []
    for ins in instructions:
        if ins.cmd == "from":
            name = ""
            if len(ins.args) == 3 and ins.args[1].lower() == "as":
                name = ins.args[2].lower()
            stages.append({"from": ins, "name": name, "body": []})
        elif not stages:
            if ins.cmd != "arg":
                raise BuildError("Dockerfile:%d: %s before FROM: only ARG may come first"
                                 % (ins.start_line, ins.cmd.upper()))
            global_args.append(ins)
        else:
            stages[-1]["body"].append(ins)
    if not stages:
        raise BuildError("the Dockerfile has no FROM instruction")
    return global_args, stages


def _flags(ins):
    result = {}
    for flag in ins.flags:
        name, _, value = flag[2:].partition("=")
        result[name] = value
    return result


def _key(*parts):
    return "sha256:" + hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _duration_ns(text):
    from ..oci.image import parse_duration
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise BuildError(str(exc)) from None


_CACHE_FILE = buildsteps.CACHE_FILE  # step key -> image ID
_KNOWN_FILE = buildsteps.KNOWN_FILE  # context -> {relpath: [stat signature..., digest]}


def _read_json(store, name):
    try:
        with open(os.path.join(store.root, name), "rb") as f:
            return fastjson.loads(f.read())
    except (OSError, ValueError):
        return {}


def _update_json(store, name, change):
    """Read, change and write back one of the build's files, under the store lock."""
    from ..store import atomic_write
    with store.lock():
        data = change(_read_json(store, name))
        atomic_write(os.path.join(store.root, name), fastjson.dumps(data, compact=True))


def _read_cache(store):
    return _read_json(store, _CACHE_FILE)


def _read_known(store):
    return _read_json(store, _KNOWN_FILE)


def _cache_save(store, entries):
    def change(cache):
        cache.update(entries)
        live = store.read_index()["images"]
        return {k: v for k, v in cache.items() if v in live}
    _update_json(store, _CACHE_FILE, change)


def _save_known(store, context, known):
    """Keep the file digests of the most recent contexts (a handful: a user builds few)."""
    def change(everything):
        everything.pop(context, None)
        everything[context] = known
        return {k: everything[k] for k in list(everything)[-8:]}
    _update_json(store, _KNOWN_FILE, change)


def build(store, idmap, opts, emit):
    return Builder(store, idmap, opts, emit).build()
