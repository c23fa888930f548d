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

static void warn(const char *message, const char *detail) {
    fprintf(stderr, "sitegate: %s%s; start-up hooks of this Python are not guarded\n", message, detail);
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

#define INSTALL(type, site_code, site_size)                                          \
    do {                                                                             \
        const struct type *old = (const struct type *)*table;                        \
        size_t count = 0;                                                            \
        while (old && old[count].name) count++;                                      \
        struct type *fresh = calloc(count + 2, sizeof(struct type));                 \
        if (!fresh) return;                                                          \
        fresh[0].name = "site";                                                      \
        fresh[0].code = site_code;                                                   \
        fresh[0].size = (int)site_size;                                              \
        if (count) memcpy(fresh + 1, old, count * sizeof(struct type));              \
        *table = fresh;                                                              \
    } while (0)

__attribute__((constructor)) static void sitegate_preload(void) {
    const void **table = dlsym(RTLD_DEFAULT, "PyImport_FrozenModules");
    const char *(*get_version)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "Py_GetVersion");
    if (!table || !get_version) return;

    const char *plan_path = getenv("SITEGATE_PLAN");
    if (!plan_path || !*plan_path) return;
    size_t size = 0;
    unsigned char *plan = read_plan(plan_path, &size);
    size_t header = sizeof MAGIC - 1;
    if (!plan || size < header + 12 || memcmp(plan, MAGIC, header) != 0) {
        warn("cannot read the start-up plan ", plan_path);
        return;
    }
    uint32_t major = little_endian(plan + header), minor = little_endian(plan + header + 4);
    uint32_t code_size = little_endian(plan + header + 8);
    if (code_size > size - header - 12) {
        warn("the start-up plan is truncated: ", plan_path);
        return;
    }

    unsigned running_major = 0, running_minor = 0;
    if (sscanf(get_version(), "%u.%u", &running_major, &running_minor) != 2 ||
        running_major != major || running_minor != minor) {
        warn("the start-up plan was made for another Python version than ", get_version());
        return;
    }
    const unsigned char *code = plan + header + 12;
    if (minor <= 10) INSTALL(frozen_38, code, code_size);
    else if (minor <= 12) INSTALL(frozen_311, code, code_size);
    else INSTALL(frozen_313, code, code_size);
}
