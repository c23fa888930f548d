# sitegate's guard for `site`, compiled into the interpreter's own `site` module.
#
# sitegate compiles the interpreter's `site.py` with this function inserted before its
# `main()` call, and hands the result to the interpreter as its frozen `site` module. The
# function reads the startup plan that sitegate verified and routes `site`'s own `.pth`
# processing and its `sitecustomize`/`usercustomize` imports through it: `site` still decodes,
# splits and executes every line itself, but from the plan's bytes, in which every line that
# was not allowed reads as a comment. It returns the function that puts `site` back as it was.
#
# It trusts the plan file (written by sitegate into its cache) and nothing on disk that the
# plan does not pin. It must run on every CPython from 3.8 and import nothing new.


def __sitegate_guard(site_globals, site_file):
    sys = site_globals["sys"]
    os = site_globals["os"]
    real_io = site_globals["io"]
    real_addpackage = site_globals["addpackage"]
    real_execsitecustomize = site_globals["execsitecustomize"]
    real_execusercustomize = site_globals["execusercustomize"]

    def warn(message):
        sys.stderr.write("sitegate: " + message + "\n")

    plan = None
    plan_path = os.environ.get("SITEGATE_PLAN")
    if plan_path:
        try:
            import marshal

            with real_io.open(plan_path, "rb") as plan_file:
                data = plan_file.read()
            header = data.index(b"\n", 0, 64) + 1
            code_size = int.from_bytes(data[header + 8 : header + 12], "little")
            version_size = int.from_bytes(data[header + 12 : header + 16], "little")
            plan = marshal.loads(data[header + 16 + version_size + code_size :])
        except Exception as error:
            warn("cannot read the start-up plan `%s` (%s); every hook is skipped" % (plan_path, error))
    else:
        warn("no start-up plan was given; every hook is skipped")
    files = plan["files"] if plan else {}
    modules = plan["modules"] if plan else {}
    warned = set()

    class PlannedIO(object):
        def __init__(self, content):
            self.content = content

        def open_code(self, path):
            return real_io.BytesIO(self.content)

        def __getattr__(self, name):
            return getattr(real_io, name)

    # While an allowed hook runs natively, a PEP 578 audit hook refuses what no start-up hook
    # needs: sockets and name lookups, processes, `ctypes`, and reading a process's
    # environment from `/proc`. It is defence in depth, not a boundary: audit hooks cannot be
    # removed, so it is added only when a hook runs natively, and stays inert afterwards; code
    # in native extensions, and threads a hook leaves running, are beyond it.
    refused_events = (
        "socket.__new__", "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg",
        "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
        "socket.getnameinfo", "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn",
        "os.spawn", "os.fork", "os.forkpty", "pty.spawn", "ctypes.dlopen", "ctypes.dlsym",
        "ctypes.call_function", "ctypes.cdata",
    )
    guarding = [0]
    audit_added = [False]
    realpath = os.path.realpath

    def refuse(event, arguments):
        if guarding[0] <= 0:
            return
        if event == "open":
            path = arguments[0] if arguments else None
            if isinstance(path, bytes):
                path = path.decode("utf-8", "surrogateescape")
            if not isinstance(path, str):
                return
            # By name too: a path relative to a directory descriptor of `/proc` does not
            # resolve from here.
            name = path.rstrip("/").rsplit("/", 1)[-1]
            real = realpath(path)
            exposes = name in ("environ", "mem") or (
                real.startswith("/proc/") and real.rsplit("/", 1)[-1] in ("environ", "mem")
            )
            if not exposes:
                return
        elif event not in refused_events:
            return
        raise PermissionError("sitegate: a start-up hook may not do `%s`" % event)

    def guarded_run():
        if not audit_added[0]:
            audit_added[0] = True
            sys.addaudithook(refuse)
        guarding[0] += 1
        released = [False]

        def release():
            if not released[0]:
                released[0] = True
                guarding[0] -= 1

        return release

    def filtered_environment(grant):
        # Only the granted variables are visible while an allowed hook runs; what the hook
        # sets or removes is kept afterwards.
        names, prefixes = grant
        posix = sys.modules[os.name]
        views = (os.environ._data, posix.environ)
        saved = [dict(view) for view in views]
        for view, original in zip(views, saved):
            view.clear()
            for key, value in original.items():
                text = key.decode("utf-8", "surrogateescape") if isinstance(key, bytes) else key
                if text in names or text.startswith(prefixes):
                    view[key] = value
        granted = [dict(view) for view in views]

        def restore():
            for view, original, before in zip(views, saved, granted):
                after = dict(view)
                view.clear()
                view.update(original)
                for key in before:
                    if key not in after:
                        view.pop(key, None)
                for key, value in after.items():
                    if before.get(key) is not value:
                        view[key] = value

        return restore

    def addpackage(sitedir, name, known_paths):
        fullname = os.path.abspath(os.path.join(sitedir, name))
        key = os.fsencode(fullname)
        if key not in files:
            if key not in warned:
                warned.add(key)
                warn("skipped `%s`: it was not verified before this start" % fullname)
            return known_paths
        entry = files[key]
        if entry is None:
            return known_paths
        content, grant = entry
        site_globals["io"] = PlannedIO(content)
        restore = filtered_environment(grant) if grant is not None else None
        release = guarded_run() if grant is not None else None
        try:
            return real_addpackage(sitedir, name, known_paths)
        finally:
            if release is not None:
                release()
            site_globals["io"] = real_io
            if restore is not None:
                restore()

    class PlannedCustomize(object):
        def find_spec(self, fullname, path=None, target=None):
            if fullname not in ("sitecustomize", "usercustomize"):
                return None
            planned = modules.get(fullname)
            spec = None
            for finder in sys.meta_path:
                find = getattr(finder, "find_spec", None)
                if finder is self or find is None:
                    continue
                spec = find(fullname, path, target)
                if spec is not None:
                    break
            if planned is None:
                # A denied module was reported before the start; one the scan never saw (in
                # a directory a hook added) is said here, and skipped all the same.
                if spec is not None and fullname not in modules:
                    warn("skipped `%s`: it was not verified before this start" % (spec.origin or fullname))
                raise ModuleNotFoundError("No module named %r" % fullname, name=fullname)
            origin, source = planned[0], planned[1]
            if spec is None or spec.origin != os.fsdecode(origin) or not hasattr(spec.loader, "get_code"):
                warn("skipped `%s`: it is not the module that was verified" % fullname)
                raise ModuleNotFoundError("No module named %r" % fullname, name=fullname)
            loader = spec.loader

            def get_code(name):
                del loader.get_code
                return compile(source, spec.origin, "exec", dont_inherit=True)

            loader.get_code = get_code
            return spec

    def planned_import(real, module):
        def run():
            planned = modules.get(module)
            finder = PlannedCustomize()
            sys.meta_path.insert(0, finder)
            restore = filtered_environment(planned[2]) if planned else None
            release = guarded_run() if planned else None
            try:
                real()
            finally:
                if release is not None:
                    release()
                sys.meta_path.remove(finder)
                if restore is not None:
                    restore()

        return run

    def apply_effects(runs):
        # A hook allowed for its effects: sitegate replaced its code with this call. Each run
        # the sandbox evaluated is the `sys.path` it started from and the entries it appended
        # (appends are all such a hook may do). On the `sys.path` of one of them the hook's
        # change is known exactly; on any other (a hook that ran natively before it changed
        # `sys.path`), the first run's entries are appended as they were recorded.
        current = list(sys.path)
        for before, appended in runs:
            if current == before:
                break
        else:
            appended = runs[0][1]
        sys.path.extend(appended)

    # The replacement of a hook allowed for its effects calls this through `site.addpackage`,
    # which stays the guarded one, without a name of its own in `site`.
    addpackage.sitegate_effects = apply_effects
    site_globals["addpackage"] = addpackage
    site_globals["execsitecustomize"] = planned_import(real_execsitecustomize, "sitecustomize")
    site_globals["execusercustomize"] = planned_import(real_execusercustomize, "usercustomize")

    def restore_site():
        # `addpackage` stays guarded: a program that calls `site.addsitedir` later gets the
        # plan's bytes for the files that were verified, and skips every other `.pth` file
        # with a warning, instead of running hooks nobody checked.
        site_globals["execsitecustomize"] = real_execsitecustomize
        site_globals["execusercustomize"] = real_execusercustomize
        if site_file is not None:
            # Up to 3.10 `site` is imported from its source file. It gets the file's names, but
            # keeps its frozen spec and loader: `python -m site` (through `runpy`) must run this
            # guarded code, not the unguarded file.
            bootstrap = sys.modules["_frozen_importlib_external"]
            site_globals["__file__"] = site_file
            site_globals["__cached__"] = bootstrap.cache_from_source(site_file)

    return restore_site
