"""The Engine API's networks, volumes, events, system df and prunes.

Owns: these endpoints' Docker shapes (`{"Id","Warning"}` of a network create, `{"Volumes",
"Warnings"}` of a volume list, the prunes' `...Deleted`/`SpaceReclaimed` reports, /system/df's
LayersSize/Images/Containers/Volumes/BuildCache), their status codes and wording (404 "network
X not found", "get X: no such volume"; 403 for a network with active endpoints, as dockerd),
the events stream (JSON lines from the journal, following until `until` or the client
leaves), and the jobs of those that may fork (removals hand subordinate-owned trees to a user
namespace; connecting a running container enters the network holder).
Must not: decide anything about networks, volumes or prunes (ops/networks.py, ops/volumes.py,
ops/prune.py do), or make JSON the CLI makes too (their inspect_json do).
"""

import json

from .. import errors
from ..ops import events, networks, prune as prune_ops, volumes
from ..ops.storage import open_store
from . import bodytypes
from .forkserver import JOBS
from .httpserver import HTTPError


def _routes():
    from . import routes  # the first slice's helpers (routes imports this module)
    return routes


def _job(name):
    def register(func):
        JOBS[name] = func
        return func
    return register


def _checked(filters, allowed):
    unknown = [k for k in filters if k not in allowed]
    if unknown:
        raise HTTPError(400, "invalid filter '%s'" % unknown[0])
    return filters


def _body(h, shape, where):
    body = h.json_body({}, shape, where)
    if not isinstance(body, dict):
        raise HTTPError(400, "invalid JSON: the body must be an object")
    return body


def _maps(body, *keys):
    for key in keys:
        if body.get(key) is not None and not isinstance(body[key], dict):
            raise HTTPError(400, "json: cannot unmarshal into field %s of type "
                            "map[string]string" % key)


# -- networks -----------------------------------------------------------------------------------

def _network(store, name):
    try:
        return networks.find(store, name)
    except errors.NotFound:
        raise HTTPError(404, "network %s not found" % name) from None


def networks_list(h):
    filters = _checked(_routes()._filters(h), networks.NETWORK_FILTERS)
    store = open_store()
    accepts = networks.matcher(store, filters)
    nets = [networks.predefined(n) for n in networks.PREDEFINED] + networks.list_networks(store)
    h.reply(200, [networks.inspect_json(store, n) for n in nets if accepts(n)])


def network_inspect(h, name):
    store = open_store()
    h.reply(200, networks.inspect_json(store, _network(store, name)))


def network_create(h):
    body = _body(h, bodytypes.NETWORK_CREATE, "NetworkCreateRequest")
    name = body.get("Name")
    if not isinstance(name, str) or not name:
        raise HTTPError(400, "network name cannot be empty")
    ipam = body.get("IPAM") or {}
    configs = ipam.get("Config") or []
    # one config per family (IPv4 first unless its Subnet says IPv6), as dockerd sorts them
    by_family = {}
    for conf in configs if isinstance(configs, list) else [None]:
        family = 6 if networks.is_v6((conf or {}).get("Subnet")) else 4
        if not isinstance(conf, dict) or family in by_family:
            raise HTTPError(400, "rootless-box networks have one IPv4 and one IPv6 subnet: "
                            "give one IPAM Config per family")
        by_family[family] = conf
    conf, conf6 = by_family.get(4, {}), by_family.get(6, {})
    ipv6 = bool(body.get("EnableIPv6"))
    _maps(body, "Options", "Labels")
    try:
        meta = networks.create(open_store(), name, body.get("Driver") or "bridge",
                               bool(body.get("Internal")), conf.get("Subnet") or None,
                               conf.get("Gateway") or None, conf.get("IPRange") or None,
                               body.get("Labels") or {}, body.get("Options") or {},
                               conf.get("AuxiliaryAddresses") or None,
                               ipam.get("Options"), ipv6, conf6.get("Subnet") or None,
                               conf6.get("Gateway") or None, conf6.get("IPRange") or None,
                               conf6.get("AuxiliaryAddresses") or None)
    except errors.Conflict as exc:
        if "already exists" in exc.message:
            raise HTTPError(409, exc.message) from None
        raise HTTPError(403 if "predefined" in exc.message else 409, exc.message) from None
    h.reply(201, {"Id": meta["Id"], "Warning": networks.ipv6_ignored(
        conf6.get("Subnet"), ipv6) or ""})


def network_delete(h, name):
    store = open_store()
    net = _network(store, name)
    try:
        networks.remove(store, net["Name"])
    except errors.Conflict as exc:
        raise HTTPError(403, exc.message) from None  # dockerd: errdefs.Forbidden
    h.reply(204)


def _endpoint_body(h):
    body = _body(h, bodytypes.NETWORK_CONNECT, "NetworkConnect")
    ctr = body.get("Container")
    if not isinstance(ctr, str) or not ctr:
        raise HTTPError(400, "no container given")
    _routes()._container(ctr)  # Docker's 404 first
    return body, ctr


def network_connect(h, name):
    body, ctr = _endpoint_body(h)
    _network(open_store(), name)
    from .createbody import endpoint_settings
    try:
        settings = endpoint_settings(body.get("EndpointConfig") or {})
    except errors.UsageError as exc:
        raise HTTPError(400, exc.message) from None
    _routes().FORK.call("network_connect", dict(settings, network=name, container=ctr))
    h.reply(200, b"", "text/plain")


def network_disconnect(h, name):
    body, ctr = _endpoint_body(h)
    force = bool(body.get("Force"))
    if not force:
        _network(open_store(), name)
    _routes().FORK.call("network_disconnect", {"network": name, "container": ctr,
                                               "force": force})
    h.reply(200, b"", "text/plain")


def networks_prune(h):
    filters = _checked(_routes()._filters(h), prune_ops.PRUNE_FILTERS)
    prune_ops.image_filter(filters)  # bad values: 400 before anything goes
    removed = networks.prune(open_store(), filters)
    h.reply(200, {"NetworksDeleted": removed or None})


@_job("network_connect")
def network_connect_job(args, _fds, _progress):
    from .jobs import _store
    _idmap, store = _store()
    networks.connect(store, args["network"], args["container"], args.get("aliases") or (),
                     args.get("ip"), args.get("mac"), args.get("links") or (),
                     args.get("driver_opts"), args.get("ip6"))
    return True


@_job("network_disconnect")
def network_disconnect_job(args, _fds, _progress):
    from .jobs import _store
    _idmap, store = _store()
    networks.disconnect(store, args["network"], args["container"], args.get("force", False))
    return True



# -- volumes ------------------------------------------------------------------------------------

def volumes_list(h):
    filters = _checked(_routes()._filters(h), volumes.VOLUME_FILTERS)
    store = open_store()
    accepts = volumes.matcher(store, filters)
    h.reply(200, {"Volumes": [volumes.inspect_json(store, m)
                              for m in volumes.list_volumes(store) if accepts(m)],
                  "Warnings": []})


def _volume(store, name):
    try:
        return volumes.get(store, name)
    except errors.NotFound:
        raise HTTPError(404, "get %s: no such volume" % name) from None


def volume_inspect(h, name):
    store = open_store()
    h.reply(200, volumes.inspect_json(store, _volume(store, name)))


def volume_create(h):
    body = _body(h, bodytypes.VOLUME_CREATE, "VolumeCreateBody")
    _maps(body, "DriverOpts", "Labels")
    name = body.get("Name") or None
    if name is not None and not isinstance(name, str):
        raise HTTPError(400, "json: cannot unmarshal into field Name of type string")
    driver = body.get("Driver") or volumes.DRIVER
    if driver != volumes.DRIVER:  # moby: a missing plugin is a 404
        raise HTTPError(404, 'error looking up volume plugin %s: plugin "%s" not found'
                        % (driver, driver))
    store = open_store()
    meta = volumes.create(store, name, driver,
                          body.get("Labels") or {}, body.get("DriverOpts") or {})
    h.reply(201, volumes.inspect_json(store, meta))


def volume_delete(h, name):
    store = open_store()
    force = h.flag("force")
    if not force:
        _volume(store, name)
    _routes().FORK.call("volume_remove", {"name": name, "force": force})
    h.reply(204)


def volumes_prune(h):
    filters = _checked(_routes()._filters(h), ("label", "label!", "all"))
    volumes.check_filters(filters)
    every = any(v.lower() in ("true", "1") for v in filters.pop("all", []))
    result = _routes().FORK.call("volumes_prune", {"all": every, "filters": filters})
    h.reply(200, {"VolumesDeleted": result["deleted"] or None,
                  "SpaceReclaimed": result["reclaimed"]})


@_job("volume_remove")
def volume_remove(args, _fds, _progress):
    from .jobs import _store
    _idmap, store = _store()
    return volumes.remove(store, args["name"], args.get("force", False))


@_job("volumes_prune")
def volumes_prune_job(args, _fds, _progress):
    from .jobs import _store
    _idmap, store = _store()
    return volumes.prune(store, args.get("all", False), args.get("filters") or {})



# -- prunes -------------------------------------------------------------------------------------

def _prune_filters(h):
    filters = _routes()._filters(h)
    dangling = filters.pop("dangling", None)
    _checked(filters, prune_ops.PRUNE_FILTERS)
    prune_ops.image_filter(filters)  # bad values: 400 before anything goes
    return filters, dangling


def containers_prune(h):
    filters, _dangling = _prune_filters(h)
    result = _routes().FORK.call("prune", {"what": "containers", "filters": filters})
    h.reply(200, {"ContainersDeleted": result["deleted"] or None,
                  "SpaceReclaimed": result["reclaimed"]})


def images_prune(h):
    """`image prune` sends dangling=true (the default), `-a` dangling=false."""
    filters, dangling = _prune_filters(h)
    every = bool(dangling) and dangling[-1].lower() in ("false", "0")
    result = _routes().FORK.call("prune", {"what": "images", "filters": filters,
                                           "all": every})
    items = [{"Untagged" if kind == "untagged" else "Deleted": what}
             for kind, what in result["items"]]
    h.reply(200, {"ImagesDeleted": items or None, "SpaceReclaimed": result["reclaimed"]})


def build_prune(h):
    """`docker builder prune` (and docker-py's prune_builds): all=1 takes the step cache too;
    BuildKit's filters and keep-storage have no counterpart in a step cache without records
    of use, so they are read and not applied."""
    every = h.flag("all")
    result = _routes().FORK.call("build_prune", {"all": every})
    h.reply(200, {"CachesDeleted": result["deleted"] or None,
                  "SpaceReclaimed": result["reclaimed"]})


@_job("build_prune")
def build_prune_job(args, _fds, _progress):
    from .jobs import _store
    _idmap, store = _store()
    return prune_ops.prune_build_cache(store, everything=args.get("all", False))


@_job("prune")
def prune_job(args, _fds, _progress):
    from .jobs import _store
    _idmap, store = _store()
    accepts = prune_ops.image_filter(args.get("filters") or {})
    if args["what"] == "containers":
        return prune_ops.prune_containers(store, accepts=accepts)
    result = prune_ops.prune_images(store, all_images=args.get("all", False), accepts=accepts)
    return {"items": [list(i) for i in result["items"]], "reclaimed": result["reclaimed"]}


# -- system df ----------------------------------------------------------------------------------

def system_df(h):
    """Docker's disk usage document from ops/prune.disk_usage, the measure `system df`
    prints; `type=` narrows it as dockerd does."""
    from ..ops import psfilter
    from ..ops.containerjson import list_item
    r = _routes()
    store = open_store()
    usage = prune_ops.disk_usage(store)
    kinds = h.query.get("type") or ["container", "image", "volume", "build-cache"]
    doc = {"LayersSize": usage["images_total"], "Images": [], "Containers": [],
           "Volumes": [], "BuildCache": []}
    if "image" in kinds:
        doc["Images"] = [dict(r.image_summary(row["image"]), Size=row["size"],
                              SharedSize=row["shared"], Containers=row["containers"])
                         for row in usage["images"]]
    if "container" in kinds:
        from ..ops import containers
        cache = {}
        for row in usage["containers"]:
            record = containers.refresh_state(store, row["record"])
            doc["Containers"].append(dict(list_item(record, psfilter.labels(store, record,
                                                                            cache)),
                                          SizeRw=row["size"], SizeRootFs=row["size"]))
    if "volume" in kinds:
        for row in usage["volumes"]:
            meta = volumes.get(store, row["name"])
            doc["Volumes"].append(dict(volumes.inspect_json(store, meta), UsageData={
                "Size": row["size"], "RefCount": row["links"]}))
    if "build-cache" in kinds:
        from .containers2 import _rfc3339
        doc["BuildCache"] = [{"ID": c["id"], "Parent": "", "Parents": None, "Type": c["type"],
                              "Description": c["description"], "InUse": c["in_use"],
                              "Shared": False, "Size": c["size"],
                              "CreatedAt": _rfc3339(c["created"]),
                              "LastUsedAt": _rfc3339(c["last_used"]), "UsageCount": 0}
                             for c in usage["build_cache"]]
        # API 1.44's clients read the total from here
        doc["BuilderSize"] = sum(c["size"] for c in usage["build_cache"])
    h.reply(200, doc)


# -- events -------------------------------------------------------------------------------------

def events_stream(h):
    """The journal (ops/events.py) as Docker's stream: one JSON object per line, the past
    from `since`, then what happens, until `until` or the client hangs up."""
    import time
    r = _routes()
    filters = _checked(r._filters(h), events.FILTERS)
    since, until = r._since_ns(h.arg("since")), r._since_ns(h.arg("until"))
    now = time.time_ns()
    if since is None and until is None:
        since = now
    follow = until is None or until > now
    write, end = h.stream()
    for event in events.read(open_store(), since, until, follow=follow,
                             stop=lambda: r._gone(h.connection)):
        if events.matches(event, filters):
            write((json.dumps(event) + "\n").encode())
    if not r._gone(h.connection):
        end()


_NAME = r"([^/]+)"
ROUTES = [
    ("GET", r"/networks", networks_list),
    ("POST", r"/networks/create", network_create),
    ("POST", r"/networks/prune", networks_prune),
    ("GET", r"/networks/%s" % _NAME, network_inspect),
    ("DELETE", r"/networks/%s" % _NAME, network_delete),
    ("POST", r"/networks/%s/connect" % _NAME, network_connect),
    ("POST", r"/networks/%s/disconnect" % _NAME, network_disconnect),
    ("GET", r"/volumes", volumes_list),
    ("POST", r"/volumes/create", volume_create),
    ("POST", r"/volumes/prune", volumes_prune),
    ("GET", r"/volumes/%s" % _NAME, volume_inspect),
    ("DELETE", r"/volumes/%s" % _NAME, volume_delete),
    ("POST", r"/containers/prune", containers_prune),
    ("POST", r"/images/prune", images_prune),
    ("POST", r"/build/prune", build_prune),
    ("GET", r"/system/df", system_df),
    ("GET", r"/events", events_stream),
]
