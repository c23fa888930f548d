/*
 * sitegate's preloaded library: hands a guarded `site` module to CPython.
 *
 * sitegate starts the interpreter with this library in LD_PRELOAD and the path of a start-up
 * plan in SITEGATE_PLAN. Before the interpreter's own code runs, the constructor below looks
 * for CPython's public table of frozen modules (`PyImport_FrozenModules`). In a process that
 * is not CPython the symbol is absent and the library does nothing. In CPython it reads the
 * plan, checks that the plan was made for this interpreter's version, and puts a table in
 * front of the interpreter's own whose first entry is `site`: the interpreter's `site.py`
 * compiled by that same interpreter with sitegate's guard inserted before `main()`. CPython
 * consults this table before its own frozen standard library (3.11 and later) and before the
 * path finder (3.8 to 3.10), so the guarded `site` is the one imported.
 *
 * It fails closed: when the plan is missing, unreadable, or made for another build of Python
 * (compared by the full `sys.version` string), it puts an empty `site` entry in front instead.
 * CPython then cannot import `site` and refuses to start (unless `-S` keeps it from importing
 * `site` at all), so no start-up hook runs unverified.
 *
 * It trusts the plan file, which sitegate wrote; it allocates once and never frees, because
 * the table must live as long as the process. It is C so that it loads into every process
 * (Python or not) with no dependency beyond libc, at a cost of one symbol lookup.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The layouts of `struct _frozen` (Include/cpython/import.h). */
struct frozen_38 { const char *name; const unsigned char *code; int size; };
struct frozen_311 { const char *name; const unsigned char *code; int size; int is_package; void *get_code; };
struct frozen_313 { const char *name; const unsigned char *code; int size; int is_package; };

static const char MAGIC[] = "SITEGATE-PLAN 1\n";

static void refuse(const char *message, const char *detail) {
    fprintf(stderr,
            "sitegate: %s%s; this Python cannot start without its start-up guard: start it "
            "through `sitegate exec`\n",
            message, detail);
}

static unsigned char *read_plan(const char *path, size_t *size) {
    FILE *file = fopen(path, "rb");
    if (!file) return NULL;
    unsigned char *data = NULL;
    size_t used = 0, capacity = 0, got;
    do {
        if (capacity - used < 65536) {
            capacity = capacity * 2 + 65536;
            unsigned char *grown = realloc(data, capacity);
            if (!grown) { free(data); fclose(file); return NULL; }
            data = grown;
        }
        got = fread(data + used, 1, capacity - used, file);
        used += got;
    } while (got > 0);
    fclose(file);
    *size = used;
    return data;
}

static uint32_t little_endian(const unsigned char *bytes) {
    return (uint32_t)bytes[0] | (uint32_t)bytes[1] << 8 | (uint32_t)bytes[2] << 16 | (uint32_t)bytes[3] << 24;
}

/* Puts an entry named `site` (code NULL, which CPython reads as "excluded": importing it
 * fails) or the guarded `site` in front of the interpreter's own table. */
#define INSTALL(type, site_code, site_size)                                          \
    do {                                                                             \
        const struct type *old = (const struct type *)*table;                        \
        size_t count = 0;                                                            \
        while (old && old[count].name) count++;                                      \
        struct type *fresh = calloc(count + 2, sizeof(struct type));                 \
        if (!fresh) abort();                                                         \
        fresh[0].name = "site";                                                      \
        fresh[0].code = site_code;                                                   \
        fresh[0].size = (int)site_size;                                              \
        if (count) memcpy(fresh + 1, old, count * sizeof(struct type));              \
        *table = fresh;                                                              \
    } while (0)

static void install(const void **table, unsigned minor, const unsigned char *code, uint32_t size) {
    if (minor <= 10) INSTALL(frozen_38, code, size);
    else if (minor <= 12) INSTALL(frozen_311, code, size);
    else INSTALL(frozen_313, code, size);
}

__attribute__((constructor)) static void sitegate_preload(void) {
    const void **table = dlsym(RTLD_DEFAULT, "PyImport_FrozenModules");
    const char *(*get_version)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "Py_GetVersion");
    if (!table || !get_version) return;

    const char *running = get_version();
    unsigned running_major = 0, running_minor = 0;
    if (sscanf(running, "%u.%u", &running_major, &running_minor) != 2) return;

    const char *plan_path = getenv("SITEGATE_PLAN");
    size_t size = 0;
    unsigned char *plan = plan_path && *plan_path ? read_plan(plan_path, &size) : NULL;
    size_t header = sizeof MAGIC - 1;
    if (!plan || size < header + 16 || memcmp(plan, MAGIC, header) != 0) {
        refuse("no readable start-up plan at ", plan_path ? plan_path : "(SITEGATE_PLAN is unset)");
        install(table, running_minor, NULL, 0);
        return;
    }
    uint32_t code_size = little_endian(plan + header + 8);
    uint32_t version_size = little_endian(plan + header + 12);
    size_t code_at = header + 16 + (size_t)version_size;
    if (version_size > size || code_size > size || code_at + code_size > size) {
        refuse("the start-up plan is truncated: ", plan_path);
        install(table, running_minor, NULL, 0);
        return;
    }
    const char *planned = (const char *)plan + header + 16;
    if (strlen(running) != version_size || memcmp(running, planned, version_size) != 0) {
        refuse("the start-up plan was made for another build of Python than ", running);
        install(table, running_minor, NULL, 0);
        return;
    }
    install(table, running_minor, plan + code_at, code_size);
}
