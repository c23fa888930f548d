# sitegate's introspection: run by the target interpreter as `python -I -S -c ...` with one
# argument, the path to write the compiled `site` module to. It executes no startup hook: it
# records which directories `site.main()` would hand to `addsitedir`, in order, by running
# `main()` with every function that reads a hook or a directory replaced by a recorder. It
# prints its findings as JSON on stdout.
import ast
import json
import locale
import marshal
import os
import sys

import site

GUARD_SOURCE = sys.stdin.read()
USER_SITE = object()
calls = []


def record_dir(sitedir, known_paths=None):
    calls.append(sitedir)
    return known_paths


def record_user_site(known_paths):
    calls.append(USER_SITE)
    return known_paths


real_isdir = os.path.isdir
site.addsitedir = record_dir
site.addusersitepackages = record_user_site
site.check_enableusersite = lambda: True
for name in ("execsitecustomize", "execusercustomize", "setquit", "setcopyright", "sethelper",
             "enablerlcompleter", "setencoding", "aliasmbcs"):
    if hasattr(site, name):
        setattr(site, name, lambda *args: None)
base_path = list(sys.path)
real_prefix = (sys.prefix, sys.exec_prefix)
os.path.isdir = lambda path: True
try:
    site.main()
finally:
    os.path.isdir = real_isdir

stdlib = os.path.dirname(os.__file__)
site_path = os.path.join(stdlib, "site.py")
with open(site_path, "rb") as source_file:
    site_source = source_file.read()
tree = ast.parse(site_source, site_path)
guard = ast.parse(GUARD_SOURCE)
frozen = sys.version_info >= (3, 11)
filename = "<frozen site>" if frozen else site_path
last_line = max(getattr(node, "lineno", 0) for node in ast.walk(tree)) + 1
ast.increment_lineno(guard, last_line)
main_call = [
    index for index, node in enumerate(tree.body)
    if isinstance(node, ast.If) and ast.dump(node.test) == ast.dump(ast.parse("not sys.flags.no_site").body[0].value)
]
if len(main_call) != 1:
    raise SystemExit("site.py has no single `if not sys.flags.no_site: main()`")
index = main_call[0]
install = ast.parse("__sitegate_restore = __sitegate_guard(globals(), %r)\n" % (None if frozen else site_path))
finish = ast.parse("__sitegate_restore()\ndel __sitegate_guard, __sitegate_restore\n")
for part in (install, finish):
    ast.increment_lineno(part, last_line)
tree.body[index:index + 1] = guard.body + install.body + [tree.body[index]] + finish.body
code = compile(tree, filename, "exec", dont_inherit=True)
with open(sys.argv[1], "wb") as out:
    out.write(marshal.dumps(code))

libpython = None
try:
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            if os.path.basename(path).startswith("libpython3"):
                libpython = path
                break
except OSError:
    pass

json.dump({
    "implementation": sys.implementation.name,
    "version": list(sys.version_info[:3]),
    "build": sys.version,
    "executable": sys.executable,
    "prefix": sys.prefix,
    "base_prefix": sys.base_prefix,
    "exec_prefix": sys.exec_prefix,
    "base_path": base_path,
    "site_calls": [None if call is USER_SITE else call for call in calls],
    "user_site": site.getusersitepackages(),
    "user_site_allowed": site.ENABLE_USER_SITE is not False,
    "abiflags": getattr(sys, "abiflags", ""),
    "platlibdir": getattr(sys, "platlibdir", "lib"),
    # The locale's own codec (what `locale.getencoding()` reports from 3.11 on, ignoring UTF-8
    # mode), and whether UTF-8 mode is on by itself (a C or POSIX locale) in this run, which
    # ignores `PYTHONUTF8` because of `-I`.
    "locale_encoding": locale.nl_langinfo(locale.CODESET),
    "utf8_mode": bool(sys.flags.utf8_mode),
    "extension_suffixes": __import__("importlib.machinery").machinery.EXTENSION_SUFFIXES,
    "libpython": libpython,
    "site_py": site_path,
}, sys.stdout)
