"""The sandbox guest: evaluates one CPython startup hook and reports what it did.

This module owns the guest side of `wit/sandbox.wit`. It runs inside a CPython 3.14 compiled
to WASI, inside wasmtime, in a fresh instance for every evaluation. It reproduces the context
`site` gives a hook (`sitedir`, `sys.path`, the hook's directory importable, `exec` of the line
in `site.addpackage`'s frame) and records what the hook does: an audit hook (PEP 578), a
recording `os.environ`/`posix.environ`, and recording stand-ins for the process functions the
WASI build lacks.

What it trusts: nothing the hook does. The recorder is evidence, not the boundary: a hook may
remove or fool it, and still gets nothing, because the host grants nothing but the listed
environment variables and a read-only view of the site directory.

Build time matters: componentize-py snapshots this interpreter after the module's top level
ran, and only the standard-library modules imported by then exist at run time. The list below
is deliberate; an import that fails in the guest is reported as `missing-module`, never as a
harmless completion.
"""

import builtins
import errno
import importlib
import os
import posix
import sys
import traceback
import types

from wit_world import exports
from wit_world.exports import evaluation as wit

# The modules hooks are likely to touch: what `site` and the well-known hooks import
# (setuptools' distutils shim, virtualenv, editable finders, namespace packages), and what an
# exfiltrating hook reaches for (so that it runs far enough for the trace to show its intent).
# `ssl` and `ctypes` are not in the WASI build; they are reported when a hook needs them.
PRELOADED = (
    "abc",
    "ast",
    "base64",
    "binascii",
    "codecs",
    "collections",
    "contextlib",
    "copy",
    "dataclasses",
    "email",
    "encodings.idna",
    "enum",
    "functools",
    "getpass",
    "glob",
    "hashlib",
    "http.client",
    "importlib.abc",
    "importlib.machinery",
    "importlib.metadata",
    "importlib.resources",
    "importlib.util",
    "inspect",
    "io",
    "itertools",
    "json",
    "keyword",
    "marshal",
    "operator",
    "os.path",
    "pathlib",
    "pickle",
    "platform",
    "re",
    "shutil",
    "site",
    "socket",
    "stat",
    "string",
    "struct",
    "subprocess",
    "tempfile",
    "textwrap",
    "threading",
    "time",
    "token",
    "tokenize",
    "types",
    "typing",
    "urllib.error",
    "urllib.parse",
    "urllib.request",
    "uuid",
    "warnings",
    "weakref",
    "zipfile",
    "zipimport",
    "zlib",
)

# Modules that exist only as native code: an import of one of them means the hook needs the
# real interpreter.
NATIVE_ONLY = frozenset({"ctypes", "_ctypes", "ssl", "_ssl", "_posixsubprocess", "fcntl", "mmap"})

for _name in PRELOADED:
    try:
        importlib.import_module(_name)
    except ImportError:
        pass

import socket  # noqa: E402  (imported above; bound here for the recording wrappers)
import subprocess  # noqa: E402

# Nothing of the build machine's environment may survive in the snapshot.
posix.environ.clear()
os.environ.clear()

# The site directory is read-only; a hook's imports must not count as writes.
sys.dont_write_bytecode = True


class Recorder:
    """What one evaluation saw. Reset for every evaluation."""

    def __init__(self, request):
        self.site_dir = request.site_dir
        self.grants = list(request.granted_environment)
        self.lookups = []
        self.connections = []
        self.name_lookups = []
        self.files = []
        self.processes = []
        self.native_loads = []
        self.imports = []
        self.dynamic_code = []
        self.active = False

    def granted(self, name):
        for grant in self.grants:
            if grant.endswith("*") and name.startswith(grant[:-1]):
                return True
            if grant == name:
                return True
        return False

    def lookup(self, name):
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        name = str(name)
        if not any(existing.name == name for existing in self.lookups):
            self.lookups.append(wit.EnvironmentLookup(name, self.granted(name)))


RECORDER = None


def _text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _open_mode(mode, flags):
    if isinstance(mode, str):
        return mode
    if isinstance(flags, int):
        access = flags & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR)
        if access == os.O_RDONLY and not flags & (os.O_CREAT | os.O_TRUNC | os.O_APPEND):
            return "r"
        return "w"
    return "r"


WRITE_EVENTS = {
    "os.mkdir": "mkdir",
    "os.remove": "remove",
    "os.rmdir": "rmdir",
    "os.rename": "rename",
    "os.link": "link",
    "os.symlink": "symlink",
    "os.truncate": "truncate",
    "os.chmod": "chmod",
    "os.chown": "chown",
    "os.utime": "utime",
    "shutil.rmtree": "remove",
    "shutil.copyfile": "write",
    "shutil.move": "rename",
}

PROCESS_EVENTS = {
    "subprocess.Popen",
    "os.system",
    "os.exec",
    "os.fork",
    "os.forkpty",
    "os.posix_spawn",
    "os.spawn",
    "os.kill",
    "os.killpg",
}


def _audit(event, arguments):
    recorder = RECORDER
    if recorder is None or not recorder.active:
        return
    if event == "open":
        path, mode, flags = (tuple(arguments) + (None, None, None))[:3]
        if isinstance(path, int):
            return
        recorder.files.append(wit.FileOpen(os.path.abspath(_text(path)), _open_mode(mode, flags)))
    elif event in WRITE_EVENTS:
        recorder.files.append(wit.FileOpen(_text(arguments[0]), WRITE_EVENTS[event]))
    elif event == "socket.__new__":
        _, family, kind, _ = arguments
        recorder.connections.append(f"socket(family={family}, type={kind})")
    elif event in ("socket.connect", "socket.sendto", "socket.bind"):
        recorder.connections.append(_address(arguments[1]))
    elif event == "socket.getaddrinfo":
        if not _is_address(_text(arguments[0])):
            recorder.name_lookups.append(_text(arguments[0]))
    elif event in ("socket.gethostbyname", "socket.gethostbyaddr", "socket.getnameinfo"):
        recorder.name_lookups.append(_text(arguments[0]))
    elif event in PROCESS_EVENTS:
        recorder.processes.append(f"{event} {_shorten(repr(arguments))}")
    elif event.startswith("ctypes."):
        recorder.native_loads.append(f"{event} {_shorten(repr(arguments))}")
    elif event == "import":
        recorder.imports.append(_text(arguments[0]))
    elif event == "compile":
        source, filename = arguments[0], arguments[1]
        if _text(filename).startswith("<") and source is not None:
            recorder.dynamic_code.append(_shorten(_text(source)))
    elif event in ("os.putenv", "os.unsetenv"):
        recorder.lookup(arguments[0])


def _is_address(host):
    """Whether a host is an IP address literal, which `getaddrinfo` does not look up."""
    if ":" in host:
        return True
    parts = host.split(".")
    return len(parts) == 4 and all(part.isdigit() and int(part) < 256 for part in parts)


def _address(address):
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{_text(address[0])}:{address[1]}"
    return _text(address)


def _shorten(text, limit=200):
    return text if len(text) <= limit else text[:limit] + "..."


sys.addaudithook(_audit)


class RecordingEnvironment(dict):
    """`os.environ` for the hook: the granted variables, and a record of every key looked up.

    A dict subclass so that code which type-checks the environment keeps working. Every way
    of reading a key goes through `lookup`; listing the keys is recorded as a lookup of `*`.
    """

    def __init__(self, values, as_bytes=False):
        super().__init__(values)
        self.as_bytes = as_bytes
        self.set_keys = {}
        self.removed_keys = set()

    def _record(self, key):
        if RECORDER is not None:
            RECORDER.lookup(key)

    def __getitem__(self, key):
        self._record(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self._record(key)
        return super().get(key, default)

    def __contains__(self, key):
        self._record(key)
        return super().__contains__(key)

    def _record_all(self):
        if RECORDER is not None:
            RECORDER.lookup("*")

    def __iter__(self):
        self._record_all()
        return super().__iter__()

    def keys(self):
        self._record_all()
        return super().keys()

    def items(self):
        self._record_all()
        return super().items()

    def values(self):
        self._record_all()
        return super().values()

    def copy(self):
        self._record_all()
        return dict(super().items())

    def __setitem__(self, key, value):
        self.set_keys[key] = value
        self.removed_keys.discard(key)
        super().__setitem__(key, value)

    def __delitem__(self, key):
        self._record(key)
        self.set_keys.pop(key, None)
        self.removed_keys.add(key)
        super().__delitem__(key)

    def setdefault(self, key, default=None):
        if not self.__contains__(key):
            self.__setitem__(key, default)
        return super().__getitem__(key)

    def pop(self, key, *default):
        self._record(key)
        if super().__contains__(key):
            self.removed_keys.add(key)
            self.set_keys.pop(key, None)
        return super().pop(key, *default)

    def update(self, *arguments, **keywords):
        for key, value in dict(*arguments, **keywords).items():
            self.__setitem__(key, value)


def _refuse_process(name):
    def refuse(*arguments, **keywords):
        if RECORDER is not None:
            RECORDER.processes.append(f"os.{name} {_shorten(repr(arguments))}")
        raise PermissionError(errno.EPERM, f"the sandbox runs no process (os.{name})")

    refuse.__name__ = name
    return refuse


# The WASI build has none of these, so they fail before any audit point; recording stand-ins
# put the attempt in the trace. A hook that finds the originals missing still starts nothing.
for _name in (
    "system", "popen", "fork", "forkpty", "posix_spawn", "posix_spawnp", "execv", "execve",
    "execl", "execle", "execlp", "execlpe", "execvp", "execvpe", "spawnv", "spawnve", "spawnl",
    "spawnle", "spawnlp", "spawnlpe", "spawnvp", "spawnvpe", "kill", "killpg",
):
    if not hasattr(os, _name):
        setattr(os, _name, _refuse_process(_name))

_popen_init = subprocess.Popen.__init__


def _recording_popen_init(self, arguments, *rest, **keywords):
    if RECORDER is not None:
        RECORDER.processes.append(f"subprocess.Popen {_shorten(repr(arguments))}")
    return _popen_init(self, arguments, *rest, **keywords)


subprocess.Popen.__init__ = _recording_popen_init

_create_connection = socket.create_connection


def _recording_create_connection(address, *rest, **keywords):
    if RECORDER is not None:
        RECORDER.connections.append(_address(address))
    return _create_connection(address, *rest, **keywords)


socket.create_connection = _recording_create_connection

_original_import = builtins.__import__


def _recording_import(name, globals=None, locals=None, fromlist=(), level=0):
    recorder = RECORDER
    if recorder is not None and recorder.active and level == 0:
        recorder.imports.append(name)
    return _original_import(name, globals, locals, fromlist, level)


builtins.__import__ = _recording_import


class OutputLimitReached(BaseException):
    """Raised into the hook when it wrote more than the cap."""


class CappedOutput:
    """A text stream that keeps at most `cap` characters and stops the hook beyond it."""

    def __init__(self, cap):
        self.cap = cap
        self.parts = []
        self.size = 0
        self.truncated = False
        self.encoding = "utf-8"
        self.errors = "strict"

    def write(self, text):
        text = str(text)
        room = self.cap - self.size
        if len(text) > room:
            self.parts.append(text[: max(room, 0)])
            self.size = self.cap
            self.truncated = True
            raise OutputLimitReached()
        self.parts.append(text)
        self.size += len(text)
        return len(text)

    def flush(self):
        pass

    def isatty(self):
        return False

    def writable(self):
        return True

    def fileno(self):
        raise OSError(errno.EBADF, "captured stream has no file descriptor")

    def value(self):
        return "".join(self.parts)


def _object_kind(value):
    if isinstance(value, type):
        return value.__module__, value.__qualname__
    if callable(value) and hasattr(value, "__qualname__") and hasattr(value, "__module__"):
        return str(value.__module__), value.__qualname__
    kind = type(value)
    return kind.__module__, kind.__qualname__


def _added_objects(before, after):
    known = {id(value) for value in before}
    added = []
    for position, value in enumerate(after):
        if id(value) not in known:
            module, name = _object_kind(value)
            added.append(wit.InstalledObject(module, name, position))
    return added


# `sys` attributes the evaluation itself changes, or that record an error and mean nothing later.
STATE_IGNORED = frozenset(("last_type", "last_value", "last_traceback", "last_exc"))


def _state():
    """What of the interpreter's state a hook could change for good, beyond `sys.path`."""
    return (
        {name: id(value) for name, value in vars(sys).items() if name not in STATE_IGNORED},
        {name: id(value) for name, value in vars(builtins).items()},
        sys.getrecursionlimit(),
        id(sys.gettrace()),
        id(sys.getprofile()),
    )


def _state_changes(before, after):
    changes = []
    for space, old, new in (("sys", before[0], after[0]), ("builtins", before[1], after[1])):
        for name in sorted(set(old) | set(new)):
            if old.get(name) != new.get(name):
                changes.append(f"{space}.{name}")
    for what, old, new in zip(
        ("the recursion limit", "the trace function", "the profile function"),
        before[2:],
        after[2:],
    ):
        if old != new:
            changes.append(what)
    return changes


def _path_text(entry):
    """A `sys.path` entry as text; a hook may put bytes or other objects there."""
    if isinstance(entry, str):
        # Through `str`'s own methods, which a subclass cannot override.
        try:
            str.encode(entry, "utf-8")
        except UnicodeEncodeError:
            # Undecodable bytes (surrogates) cannot cross into the host as a string: shown as
            # Python writes them, which the host takes for a relative entry and refuses.
            return ascii(entry)
        return str.__str__(entry)
    if isinstance(entry, bytes):
        return os.fsdecode(entry)
    return repr(entry)


def _path_changes(before, after):
    remaining = list(after)
    removed = []
    for position, entry in enumerate(before):
        if entry in remaining:
            remaining.remove(entry)
        else:
            removed.append(wit.PathEntry(entry, position))
    added = []
    unmatched = list(before)
    for position, entry in enumerate(after):
        if entry in unmatched:
            unmatched.remove(entry)
        else:
            added.append(wit.PathEntry(entry, position))
    return added, removed


def _failed_import(recorder, loaded):
    """The first module the hook tried to import that is not loaded afterwards."""
    for name in recorder.imports:
        if name and name not in loaded and not name.startswith("."):
            return name
    return None


def _site_has_native(site_dir, name):
    top = name.split(".")[0]
    try:
        entries = os.listdir(site_dir)
    except OSError:
        return False
    return any(
        entry.startswith(top + ".") and (entry.endswith(".so") or entry.endswith(".pyd"))
        for entry in entries
    )


def _compile_hook(request):
    """The hook's code, compiled before the recorder starts so that only the hook's own
    `compile` calls are recorded as dynamic code."""
    path = os.path.join(request.site_dir, request.file_name)
    if request.kind == wit.HookKind.PTH_LINE:
        return compile(request.source, "<string>", "exec")
    return compile(request.source, path, "exec")


class TargetVersion(tuple):
    """`sys.version_info` of the target interpreter, for the length of one hook."""

    major = property(lambda self: self[0])
    minor = property(lambda self: self[1])
    micro = property(lambda self: self[2])
    releaselevel = property(lambda self: self[3])
    serial = property(lambda self: self[4])


PRETENDED = ("version_info", "hexversion", "version", "platform")


def _pretend_target(interpreter):
    """Makes `sys.version_info`, `sys.hexversion`, `sys.version` and `sys.platform` read as
    the target's (sitegate runs on Linux), so that a hook which branches on them takes the
    target's branch. Returns what to restore. `sys.implementation` and the guest's own
    modules stay 3.14's; the prefixes are the target's already."""
    parts = [int(part) for part in interpreter.version.split(".")[:3] if part.isdigit()]
    major, minor, micro = (parts + [0, 0, 0])[:3]
    saved = tuple(getattr(sys, name) for name in PRETENDED)
    sys.version_info = TargetVersion((major, minor, micro, "final", 0))
    sys.hexversion = (major << 24) | (minor << 16) | (micro << 8) | 0xF0
    sys.version = f"{major}.{minor}.{micro} (sitegate sandbox, guest {saved[2].split()[0]})"
    sys.platform = "linux"
    return saved


def _restore_pretended(saved):
    for name, value in zip(PRETENDED, saved):
        setattr(sys, name, value)


def _addpackage(sitedir, name, known_paths, fullname, n, line):
    """Stands for `site.addpackage`'s frame: the same local names, then `exec(line)`.

    `line` holds the compiled line rather than its text, so that running it is not recorded
    as dynamic code; a hook that reads its own text from the frame sees a code object.
    """
    reset = False
    exec(line)
    return known_paths if not reset else None


def _customize_name(kind):
    return "sitecustomize" if kind == wit.HookKind.SITECUSTOMIZE else "usercustomize"


def _run_hook(request, code):
    path = os.path.join(request.site_dir, request.file_name)
    if request.kind == wit.HookKind.PTH_LINE:
        # `site.addpackage` runs the line with `exec(line)` in its own frame, with `site`'s
        # globals: hooks read `sitedir` from there (`sys._getframe(1).f_locals['sitedir']`).
        addpackage = types.FunctionType(_addpackage.__code__, vars(sys.modules["site"]))
        addpackage(request.site_dir, request.file_name, set(sys.path), path, request.line, code)
    else:
        name = _customize_name(request.kind)
        module = type(sys)(name)
        module.__file__ = path
        sys.modules[name] = module
        exec(code, vars(module))


class Evaluation(exports.Evaluation):
    def evaluate(self, request):
        global RECORDER
        recorder = Recorder(request)
        RECORDER = recorder

        # The target's view of the world, as `site` has built it so far.
        granted = {variable.name: variable.value for variable in request.environment}
        environment = RecordingEnvironment(granted)
        os.environ = environment
        posix.environ = RecordingEnvironment(
            {name.encode(): value.encode() for name, value in granted.items()}, as_bytes=True
        )
        os.environb = posix.environ
        sys.path[:] = list(request.interpreter.sys_path)
        if request.site_dir not in sys.path:
            sys.path.append(request.site_dir)
        sys.prefix = request.interpreter.prefix
        sys.exec_prefix = request.interpreter.exec_prefix
        sys.path_importer_cache.clear()
        importlib.invalidate_caches()
        stdout = CappedOutput(request.output_cap)
        stderr = CappedOutput(request.output_cap)

        path_before = list(sys.path)
        meta_before = list(sys.meta_path)
        hooks_before = list(sys.path_hooks)
        loaded_before = set(sys.modules)
        if request.kind != wit.HookKind.PTH_LINE:
            # The customize module itself stays in `sys.modules`, as `site`'s import leaves
            # it: not a module the hook loaded.
            loaded_before.add(_customize_name(request.kind))
        outcome = wit.Outcome_Completed()

        saved_streams = sys.stdout, sys.stderr
        try:
            code = _compile_hook(request)
        except SyntaxError as error:
            code = None
            outcome = wit.Outcome_Raised(wit.Raised("SyntaxError", str(error), ""))
        sys.stdout, sys.stderr = stdout, stderr
        recorder.active = code is not None
        escaped = None
        saved_version = _pretend_target(request.interpreter)
        state_before = _state()
        state_after = state_before
        try:
            if code is not None:
                _run_hook(request, code)
        except BaseException as error:  # noqa: B036  (a hook's SystemExit is a result too)
            escaped = error
        finally:
            recorder.active = False
            try:
                state_after = _state()
            except BaseException:  # noqa: B036  (a hook can break even this)
                state_after = None
            _restore_pretended(saved_version)
            sys.stdout, sys.stderr = saved_streams

        # Formatting the traceback reads the guest's own files: done after recording stopped.
        if isinstance(escaped, OutputLimitReached):
            outcome = wit.Outcome_OutputLimit()
        elif isinstance(escaped, MemoryError):
            outcome = wit.Outcome_OutOfMemory()
        elif escaped is not None:
            outcome = wit.Outcome_Raised(
                wit.Raised(
                    type(escaped).__qualname__,
                    _shorten(str(escaped), 2000),
                    _shorten("".join(traceback.format_exception(escaped)), 8000),
                )
            )
        if stdout.truncated or stderr.truncated:
            outcome = wit.Outcome_OutputLimit()

        # An import that failed is never hidden behind a completion or a caught exception.
        loaded_after = set(sys.modules)
        failed = _failed_import(recorder, loaded_after)
        if failed is not None and not isinstance(
            outcome, (wit.Outcome_OutputLimit, wit.Outcome_OutOfMemory)
        ):
            top = failed.split(".")[0]
            if top in NATIVE_ONLY or _site_has_native(request.site_dir, failed):
                outcome = wit.Outcome_NeedsNative(failed)
            else:
                outcome = wit.Outcome_MissingModule(failed)

        path_after = [_path_text(entry) for entry in sys.path]
        added, removed = _path_changes(path_before, path_after)
        environment_after = os.environ if isinstance(os.environ, RecordingEnvironment) else None
        effects = wit.Effects(
            added,
            removed,
            _added_objects(meta_before, list(sys.meta_path)),
            _added_objects(hooks_before, list(sys.path_hooks)),
            [
                wit.EnvironmentVariable(name, str(value))
                for name, value in (environment_after.set_keys.items() if environment_after else [])
            ],
            sorted(environment_after.removed_keys) if environment_after else [],
            sorted(loaded_after - loaded_before),
            path_after,
            ["the interpreter's state"]
            if state_after is None
            else _state_changes(state_before, state_after),
        )
        trace = wit.Trace(
            recorder.lookups,
            recorder.connections,
            recorder.name_lookups,
            recorder.files,
            recorder.processes,
            recorder.native_loads,
            # Both the audit hook and the `__import__` wrapper see most imports: each once.
            list(dict.fromkeys(recorder.imports)),
            recorder.dynamic_code,
            stdout.value(),
            stderr.value(),
            stdout.truncated or stderr.truncated,
        )
        return wit.Reply(outcome, effects, trace)
