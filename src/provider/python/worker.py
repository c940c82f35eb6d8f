# faultline's Python worker: one per run, started when the run first needs Python.
#
# Requests arrive as JSON lines on stdin; each runs in its own thread (as the Chaos
# Toolkit runs background activities and controls in threads), so calls overlap and
# modules keep their state between calls, as under `chaos run`. Replies go as JSON
# lines on a private copy of fd 1; fd 1 itself points at stderr, so what functions
# and their children print cannot corrupt a reply. A call's own prints (sys.stdout and
# sys.stderr, per thread) come back with its reply.
import importlib, importlib.util, inspect, json, os, signal, sys, threading, traceback, types

_out = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
_real_err = sys.stderr
_lock = threading.RLock()
_local = threading.local()
_imports = threading.Lock()


def _enc(o):
    if isinstance(o, (bytes, bytearray)):
        return o.decode("utf-8", "replace")
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    if hasattr(o, "isoformat"):
        return o.isoformat()
    return str(o)


def _dumps(v):
    return json.dumps(v, default=_enc)


def _emit_line(line):
    with _lock:
        _out.write(line + "\n")
        _out.flush()


def _emit(d):
    try:
        line = _dumps(d)
    except Exception as e:  # a circular structure, say
        line = _dumps({"id": d.get("id"), "error": "the reply cannot be written as JSON: %s" % e, "kind": "exception"})
    _emit_line(line)


class _Capture:
    """sys.stdout and sys.stderr: a call's prints go to its own buffer."""

    def __init__(self, real):
        self._real = real

    def write(self, s):
        buf = getattr(_local, "buf", None)
        if buf is None:
            return self._real.write(s)
        n = len(s.encode("utf-8", "replace"))
        _local.total += n
        room = _local.limit - _local.kept
        if room > 0:
            part = s if n <= room else s.encode("utf-8", "replace")[:room].decode("utf-8", "ignore")
            buf.append(part)
            _local.kept += min(n, room)
        return len(s)

    def flush(self):
        if getattr(_local, "buf", None) is None:
            self._real.flush()

    def __getattr__(self, name):
        return getattr(self._real, name)


sys.stdout = _Capture(_real_err)
sys.stderr = _Capture(_real_err)

# The `chaos` command does not import from the current directory; faultline does, on
# purpose (docs/compatibility.md): extensions next to the experiment just work.
if os.getcwd() not in sys.path:
    sys.path.insert(0, os.getcwd())


def _shim_chaoslib():
    """Without chaostoolkit-lib installed, controls and extensions that import
    chaoslib.exceptions, chaoslib.exit or chaoslib.types still load."""
    # Looked up, not imported: importing the real chaoslib costs tens of milliseconds,
    # paid only by the runs whose code imports it.
    try:
        if importlib.util.find_spec("chaoslib") is not None:
            return
    except (ImportError, ValueError):
        pass
    import typing
    pkg = types.ModuleType("chaoslib")
    pkg.__path__ = []
    exc = types.ModuleType("chaoslib.exceptions")
    class ChaosException(Exception):
        pass
    exc.ChaosException = ChaosException
    for n in ("InvalidActivity", "ActivityFailed", "InvalidExperiment", "InterruptExecution",
              "ExperimentExitedException", "InvalidControl", "InvalidSource"):
        setattr(exc, n, type(n, (ChaosException,), {}))
    ext = types.ModuleType("chaoslib.exit")
    ext.exit_gracefully = lambda: _exit_gracefully()
    ext.exit_ungracefully = lambda: _exit_ungracefully()
    ty = types.ModuleType("chaoslib.types")
    ty.__getattr__ = lambda name: typing.Any
    pkg.exceptions, pkg.exit, pkg.types = exc, ext, ty
    for m in (pkg, exc, ext, ty):
        sys.modules[m.__name__] = m


_shim_chaoslib()

# chaoslib.exit sends SIGUSR1 (graceful) or SIGUSR2 (ungraceful) to this process: the
# run is told, and decides (the main thread runs the handler, between reads).
def _on_exit(signum, frame):
    _emit({"event": "exit", "graceful": signum == signal.SIGUSR1})


signal.signal(signal.SIGUSR1, _on_exit)
signal.signal(signal.SIGUSR2, _on_exit)
signal.signal(signal.SIGINT, signal.SIG_IGN)


# Called from a call (a background activity, typically), chaoslib.exit's functions
# tell the run once that call has replied (the event names it: `after`, and the run
# lets its caller take the reply first): under chaos the signal stops the run's main
# thread while the calling function itself returns normally (its activity succeeds),
# where the interrupt would cut the call short. A call that goes on after asking
# does not hold the run: the exit is told after a second anyway.
_EXIT_GRACE = 1.0


def _exit_later(signum):
    rid = getattr(_local, "rid", None)
    if not getattr(_local, "in_call", False):
        os.kill(os.getpid(), signum)
        return
    once = threading.Lock()

    def send(replied):
        if once.acquire(False):
            event = {"event": "exit", "graceful": signum == signal.SIGUSR1}
            if replied:
                event["after"] = rid
            _emit(event)

    timer = threading.Timer(_EXIT_GRACE, send, args=(False,))
    timer.daemon = True
    timer.start()
    _local.pending_exits.append(send)


def _exit_gracefully():
    """chaoslib.exit.exit_gracefully(): interrupt the run, rollbacks per strategy."""
    _exit_later(signal.SIGUSR1)


def _exit_ungracefully():
    """chaoslib.exit.exit_ungracefully(): interrupt the run, no rollbacks."""
    _exit_later(signal.SIGUSR2)


class _PatchExit:
    """Patches chaoslib.exit when, and only if, something imports it: importing it up
    front would cost every run the import of chaoslib (tens of milliseconds)."""

    def find_spec(self, name, path=None, target=None):
        if name != "chaoslib.exit":
            return None
        spec = None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(name, path, target)
            if spec is not None:
                break
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        real = spec.loader.exec_module

        def exec_module(module):
            real(module)
            module.exit_gracefully, module.exit_ungracefully = _exit_gracefully, _exit_ungracefully

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _PatchExit())

try:
    from opentelemetry import context as _otel_context
    from opentelemetry.propagate import extract as _otel_extract
except Exception:
    _otel_context = None


def _import(name):
    # One import at a time: two threads importing one slow module must not see it
    # half-initialised.
    with _imports:
        return importlib.import_module(name)


def _load(module, func):
    try:
        mod = _import(module)
    except BaseException as e:
        raise _Refused("cannot import module '%s' (%s: %s)" % (module, type(e).__name__, e), "import")
    f = getattr(mod, func, None)
    if f is None or not callable(f):
        raise _Refused("module '%s' has no function '%s'" % (module, func), "import")
    return f


class _Refused(Exception):
    def __init__(self, message, kind):
        Exception.__init__(self, message)
        self.kind = kind


def _bind_problem(f, args, name):
    """Chaos Toolkit's validation words for a signature mismatch, or None."""
    try:
        sig = inspect.signature(f)
    except (TypeError, ValueError):
        return None
    try:
        sig.bind(**args)
    except TypeError as x:
        msg = str(x)
        if "missing" in msg:
            return "required argument %s is missing from activity '%s' (%s%s)" % (msg.rsplit(":", 1)[1].strip(), name, f.__name__, sig)
        if "unexpected" in msg:
            return "argument %s is not part of the function signature in activity '%s' (%s%s)" % (msg.rsplit(" ", 1)[1].strip(), name, f.__name__, sig)
        return "%s (%s%s)" % (msg, f.__name__, sig)
    return None


def _params(f):
    try:
        return inspect.signature(f).parameters
    except (TypeError, ValueError):
        return {}


def op_call(req):
    f = _load(req["module"], req["func"])
    args = dict(req.get("arguments") or {})
    params = _params(f)
    if "configuration" in params:
        args["configuration"] = req.get("configuration") or {}
    if "secrets" in params and req.get("secrets") is not None:
        args["secrets"] = req["secrets"]
    problem = _bind_problem(f, args, req.get("name") or req["func"])
    if problem:
        raise _Refused(problem, "arguments")
    return {"ok": f(**args)}


def op_check(req):
    """The pre-flight: every activity's module, function and arguments."""
    problems = {}
    for item in req["items"]:
        try:
            f = _load(item["module"], item["func"])
        except _Refused as e:
            problems[item["key"]] = {"why": str(e), "kind": "import"}
            continue
        args = dict(item.get("arguments") or {})
        params = _params(f)
        for p in ("secrets", "configuration"):
            if p in params:
                args[p] = None
        problem = _bind_problem(f, args, item.get("name") or item["func"])
        if problem:
            problems[item["key"]] = {"why": problem, "kind": "arguments"}
    return {"ok": problems}


def _control_module(req):
    try:
        return _import(req["module"])
    except BaseException as e:
        raise _Refused("cannot import control module '%s' (%s: %s)" % (req["module"], type(e).__name__, e), "import")


def op_control(req):
    """One control hook, with the Chaos Toolkit's arguments; what it changed in the
    configuration, the secrets or the state comes back."""
    mod = _control_module(req)
    f = getattr(mod, req["hook"], None)
    if f is None or not callable(f):
        return {"ok": None, "absent": True}
    configuration = req.get("configuration")
    secrets = req.get("secrets")
    state = req.get("state")
    experiment = req.get("experiment")
    before = {k: _dumps(v) for k, v in (("configuration", configuration), ("secrets", secrets), ("state", state), ("experiment", experiment))}
    args = dict(req.get("arguments") or {})
    params = _params(f)
    for name, value in (("secrets", secrets), ("configuration", configuration), ("state", state),
                        ("experiment", experiment), ("settings", req.get("settings"))):
        if name in params and (name != "state" or "state" in req):
            args[name] = value
    if "extensions" in params:
        args["extensions"] = (experiment or {}).get("extensions")
    if "event_registry" in params:
        args["event_registry"] = None
    if req["hook"] in ("configure_control",):
        f(**args)
    elif req["hook"] in ("cleanup_control",):
        f()
    elif req["hook"] == "validate_control":
        f(req["context"])
    else:
        f(context=req.get("context"), **args)
    changed = {}
    for k, v in (("configuration", configuration), ("secrets", secrets), ("state", state), ("experiment", experiment)):
        if v is not None and _dumps(v) != before[k]:
            changed[k] = v
    return {"ok": changed}


_OPS = {"call": op_call, "check": op_check, "control": op_control}


class CallStopped(BaseException):
    """Raised in a call's thread when faultline stops the call (its timeout, an
    interrupt); a BaseException, so `except Exception` in user code lets it through."""


_running = {}


def _stop(req):
    """Raise CallStopped in the thread of call `target` (it takes effect at the
    thread's next Python instruction; a call waiting in C ends its wait first)."""
    ident = _running.get(req.get("target"))
    if ident is None:
        return
    try:
        import ctypes
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(CallStopped))
    except Exception:
        pass


def _kind(e):
    if isinstance(e, _Refused):
        return e.kind
    if isinstance(e, SystemExit):
        return "exit"
    if any(c.__name__ == "InterruptExecution" for c in type(e).__mro__):
        return "interrupt"
    return "exception"


def _handle(req):
    rid = req.get("id")
    _running[rid] = threading.get_ident()
    _local.buf, _local.kept, _local.total = [], 0, 0
    _local.limit = int(req.get("limit") or (1 << 20))
    _local.in_call, _local.pending_exits, _local.rid = True, [], rid
    token = None
    # For the processes the function starts, as for every child of faultline (under
    # concurrent calls, the last call to start sets them).
    for var, key in (("TRACEPARENT", "traceparent"), ("TRACESTATE", "tracestate"), ("BAGGAGE", "baggage")):
        if req.get(key):
            os.environ[var] = req[key]
        elif key in ("tracestate", "baggage") and req.get("traceparent"):
            os.environ.pop(var, None)
    if _otel_context is not None and req.get("traceparent"):
        try:
            carrier = {"traceparent": req["traceparent"]}
            if req.get("tracestate"):
                carrier["tracestate"] = req["tracestate"]
            if req.get("baggage"):
                carrier["baggage"] = req["baggage"]
            token = _otel_context.attach(_otel_extract(carrier))
        except Exception:
            token = None
    try:
        reply = _OPS[req["op"]](req)
    except BaseException as e:
        reply = {"error": str(e) if isinstance(e, _Refused) else "%s: %s" % (type(e).__name__, e), "kind": _kind(e)}
        if not isinstance(e, _Refused):
            reply["traceback"] = traceback.format_exc()
    finally:
        if token is not None:
            try:
                _otel_context.detach(token)
            except Exception:
                pass
    # A stop that comes as the call ends must not lose its reply.
    for _ in range(3):
        try:
            _running.pop(rid, None)
            _reply(req, rid, reply)
            break
        except CallStopped:
            continue


def _reply(req, rid, reply):
    output, total = "".join(_local.buf or []), _local.total
    _local.buf = None
    try:
        ok = _dumps(reply["ok"]) if "ok" in reply else None
        reply = {k: v for k, v in reply.items() if k != "ok"}
    except Exception as e:
        reply = {"error": "the result cannot be written as JSON: %s" % e, "kind": "exception"}
        ok = None
    if ok is not None and req["op"] == "call" and len(ok.encode("utf-8", "replace")) > _local.limit:
        reply = {"error": "result_too_large", "kind": "too_large", "size": len(ok)}
        ok = None
    reply.update({"id": rid, "output": output, "output_total": total})
    line = _dumps(reply)
    if ok is not None:
        line = line[:-1] + ', "ok": ' + ok + "}"
    _emit_line(line)
    _local.in_call = False
    for send in _local.pending_exits:
        send(True)


def _main():
    _emit({"event": "ready", "pid": os.getpid(), "python": sys.version.split()[0]})
    for raw in sys.stdin:
        raw = raw.strip()
        if not raw:
            continue
        try:
            req = json.loads(raw)
        except ValueError as e:
            _emit({"event": "bad_request", "error": str(e)})
            continue
        if req.get("op") == "stop":
            _stop(req)
            continue
        t = threading.Thread(target=_handle, args=(req,), daemon=True)
        t.start()


_main()
