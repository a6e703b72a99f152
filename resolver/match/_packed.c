/*
 * resolver.match._packed: the packed name table's lookup walk, compiled.
 *
 * The twin of the closure `PackedNames.python_lookup` builds (resolver/match/packed.py, whose
 * docstring describes the region), which is the reference: `Walk(...)(key, dots)` returns what
 * that closure returns for the same arguments, and they are tested against each other. Why:
 * as a closure the walk costs a tenth of a first-seen blocked answer's CPU with the rest of the
 * query path compiled; the same steps in C take a third to a half of the closure's time (no
 * slice object per label, no method call per search, crc32 inline, the window's cache lines
 * asked for at once), and what is left is mostly the wait for the window, rarely in cache.
 *
 * Only what a well-formed table and a `key.name_key` pair produce is walked here. Anything else
 * (arguments of other types or number, a dot list that does not start at -1 or points past the
 * key, a record id the lists do not hold, a digit byte below 0x80 inside a long id, ids wider
 * than MAX_WIDTH bytes, a dict value that is not a non-negative int, a search hit at byte 0)
 * hands the whole lookup to `fallback`, that closure, which answers it or raises as it always
 * did: the walk has no side effects, so starting over gives the reference's own result.
 *
 * The region's buffer is taken per call and released before returning, so mmap.close() works
 * between calls (an index freed with `free_in_pieces`); a closed region goes to the closure
 * too, which raises ValueError. Every loop is bounded: the walk goes one dot down per step and
 * a search only forward inside one window.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define DIGIT 0x80 /* record digits are the bytes from here on */
#define SHORT 64   /* ids below this take one digit byte at any width */
#define HOT 2      /* record flag: the names below anchor on themselves */
#define MAX_WIDTH 8 /* digit bytes decoded here at most (2**55 records); wider: the fallback */

static uint32_t crc_table[256];

/* zlib.crc32 of `len` bytes (CRC-32, reflected polynomial 0xEDB88320), as packed.py places. */
static uint32_t crc32_of(const char *data, Py_ssize_t len) {
    const unsigned char *b = (const unsigned char *)data;
    uint32_t crc = 0xFFFFFFFFu;
    for (Py_ssize_t i = 0; i < len; i++) crc = crc_table[(crc ^ b[i]) & 0xFF] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}

static void crc_table_init(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[n] = c;
    }
}

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *region;   /* any buffer: the mmap'd region */
    PyObject *tld;      /* dict: "name\n" -> id of single-label keys */
    PyObject *spill;    /* tuple of dicts, the spill shards */
    PyObject *at;       /* lists indexed by record id */
    PyObject *below;
    PyObject *flags;
    PyObject *fallback; /* the Python walk, for whatever is not decoded here */
    Py_ssize_t count, size, full, width;
    int has_tld_rules;
    int ready; /* __init__ ran (once) */
} Walk;

static PyTypeObject WalkType;

/* dots[i] when it is an int k with q[k + 1:] a non-empty suffix of the key; else -2. */
static Py_ssize_t dot_at(PyObject *dots, Py_ssize_t i, Py_ssize_t qlen) {
    if (i < 0 || i >= PyList_GET_SIZE(dots)) return -2;
    PyObject *item = PyList_GET_ITEM(dots, i);
    if (!PyLong_CheckExact(item)) return -2;
    int overflow;
    long k = PyLong_AsLongAndOverflow(item, &overflow);
    if (overflow || k < -1 || k >= qlen - 1) return -2;
    return (Py_ssize_t)k;
}

/* The id `dict` holds for key `data` (`whole`, the same bytes, if the caller has them as an
 * object): 1 found (*id set), 0 absent, -1 error raised, -2 a value the fallback must read. */
static int dict_id(PyObject *dict, const char *data, Py_ssize_t len, PyObject *whole,
                   Py_ssize_t *id) {
    PyObject *key = whole;
    if (key == NULL) {
        key = PyBytes_FromStringAndSize(data, len);
        if (key == NULL) return -1;
    } else {
        Py_INCREF(key);
    }
    PyObject *value = PyDict_GetItemWithError(dict, key);
    Py_DECREF(key);
    if (value == NULL) return PyErr_Occurred() ? -1 : 0;
    if (!PyLong_CheckExact(value)) return -2;
    int overflow;
    long v = PyLong_AsLongAndOverflow(value, &overflow);
    if (overflow || v < 0) return -2;
    *id = (Py_ssize_t)v;
    return 1;
}

/* list[id] (a new reference), or NULL without an exception where the list is shorter. */
static PyObject *entry(PyObject *list, Py_ssize_t id) {
    if (id >= PyList_GET_SIZE(list)) return NULL;
    return Py_NewRef(PyList_GET_ITEM(list, id));
}

/* The record flags of `id` into *flags: 1, or 0 where the fallback must read them. */
static int flags_of(PyObject *list, Py_ssize_t id, long *flags) {
    if (id >= PyList_GET_SIZE(list)) return 0;
    PyObject *item = PyList_GET_ITEM(list, id);
    if (!PyLong_CheckExact(item)) return 0;
    int overflow;
    *flags = PyLong_AsLongAndOverflow(item, &overflow);
    return !overflow;
}

/* The record id whose digits end before position p (p >= 1, region[p - 1] a digit), as
 * packed._rid: 1, or 0 where the bytes are not digits of a well-formed id. */
static int rid_at(const unsigned char *region, Py_ssize_t p, Py_ssize_t width, Py_ssize_t *id) {
    Py_ssize_t v = region[p - 1] - DIGIT;
    if (width == 1 || v < SHORT) {
        *id = v;
        return 1;
    }
    if (width > MAX_WIDTH || p - width < 0) return 0;
    v &= 63;
    for (Py_ssize_t i = 0; i < width - 1; i++) {
        unsigned char b = region[p - 2 - i];
        if (b < DIGIT) return 0;
        v |= (Py_ssize_t)(b - DIGIT) << (6 + 7 * i);
    }
    *id = v;
    return 1;
}

/* region.find(pat, start, end) for 0 <= start and plen >= 1: the first position of `pat` in
 * [start, end), end clamped to the region as mmap.find does; -1 if none. It looks for pat's last
 * byte and compares what precedes it: that byte is the "\n" ending every entry, so a window of
 * a few entries costs a few memchr steps (glibc's memmem sets up a shift table per call). */
static Py_ssize_t find(const unsigned char *region, Py_ssize_t len, const char *pat,
                       Py_ssize_t plen, Py_ssize_t start, Py_ssize_t end) {
    if (end > len) end = len;
    if (end - start < plen) return -1;
    const unsigned char *at = region + start + plen - 1, *stop = region + end;
    unsigned char last = (unsigned char)pat[plen - 1];
    while ((at = memchr(at, last, (size_t)(stop - at))) != NULL) {
        if (memcmp(at - (plen - 1), pat, (size_t)(plen - 1)) == 0) return at - (plen - 1) - region;
        at++;
    }
    return -1;
}

/* The first byte of the window that suffix `pat` anchors. Its cache lines are all asked for
 * at once: the window is rarely in cache, and the search reads on into them. */
static Py_ssize_t window_of(Walk *self, const unsigned char *region, const char *pat,
                            Py_ssize_t plen) {
    Py_ssize_t s = (Py_ssize_t)(crc32_of(pat, plen) % (uint64_t)self->count) * self->size;
    for (Py_ssize_t line = 0; line < self->size; line += 64) __builtin_prefetch(region + s + line);
    return s;
}

static PyObject *Walk_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf,
                                 PyObject *kwnames) {
    Walk *self = (Walk *)op;
    if (!self->ready) {
        PyErr_SetString(PyExc_RuntimeError, "Walk used before __init__");
        return NULL;
    }
    if (PyVectorcall_NARGS(nargsf) != 2 || kwnames != NULL) goto fallback;
    PyObject *q = args[0], *dots = args[1];
    if (!PyBytes_CheckExact(q) || !PyList_CheckExact(dots)) goto fallback;
    const char *key = PyBytes_AS_STRING(q);
    Py_ssize_t qlen = PyBytes_GET_SIZE(q);
    Py_ssize_t i = PyList_GET_SIZE(dots) - 2;
    Py_ssize_t v = -1, u = -1; /* u: the deepest key found so far, -1: none */
    int got;
    if (i < 0) { /* a single label: only a TLD rule can match */
        if (!self->has_tld_rules) return PyLong_FromLong(0);
        got = dict_id(self->tld, key, qlen, q, &v);
        if (got == -1) return NULL;
        if (got == -2) goto fallback;
        if (got == 0) return PyLong_FromLong(0);
        PyObject *result = entry(self->at, v);
        if (result == NULL) goto fallback;
        return result;
    }
    Py_ssize_t k = dot_at(dots, i, qlen), last = -1;
    if (k < -1) goto fallback;
    if (self->has_tld_rules && (last = dot_at(dots, PyList_GET_SIZE(dots) - 1, qlen)) < -1)
        goto fallback;

    Py_buffer view;
    if (PyObject_GetBuffer(self->region, &view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear(); /* a closed region: the closure raises as it always did */
        goto fallback;
    }
    const unsigned char *region = view.buf;
    Py_ssize_t len = view.len;
    PyObject *result = NULL;
    const char *pat = key + k + 1;
    Py_ssize_t plen = qlen - k - 1;
    Py_ssize_t s = window_of(self, region, pat, plen); /* it loads during the TLD lookup */
    if (self->has_tld_rules) {
        got = dict_id(self->tld, key + last + 1, qlen - last - 1, last < 0 ? q : NULL, &u);
        if (got == -1) goto release;
        if (got == -2) goto release_fallback;
        if (got == 0) u = -1;
    }
    if (s >= len) goto release_fallback;
    Py_ssize_t h = region[s], e = s + h, p = s;
    for (;;) {
        /* A hit preceded by a digit starts an entry; any other is a longer name's tail. */
        p = find(region, len, pat, plen, p, e);
        while (p >= 0) {
            if (p == 0) goto release_fallback;
            if (region[p - 1] >= DIGIT) break;
            p = find(region, len, pat, plen, p + 1, e);
        }
        if (p < 0) {
            v = -1;
            if (h == self->full) {
                PyObject *shard = PyTuple_GET_ITEM(self->spill, s % PyTuple_GET_SIZE(self->spill));
                got = dict_id(shard, pat, plen, k < 0 ? q : NULL, &v);
                if (got == -1) goto release;
                if (got == -2) goto release_fallback;
                if (got == 0) v = -1;
            }
            if (v < 0) {
                result = u < 0 ? PyLong_FromLong(0) : entry(self->below, u);
                goto release_or_fallback;
            }
            p = s; /* keys below a spilled one may sit anywhere in the window */
        } else if (!rid_at(region, p, self->width, &v)) {
            goto release_fallback;
        }
        if (k < 0) {
            result = entry(self->at, v);
            goto release_or_fallback;
        }
        long f;
        if (!flags_of(self->flags, v, &f)) goto release_fallback;
        if (!f) { /* no key below this one */
            result = entry(self->below, v);
            goto release_or_fallback;
        }
        u = v;
        k = dot_at(dots, --i, qlen);
        if (k < -1) goto release_fallback;
        pat = key + k + 1;
        plen = qlen - k - 1;
        if (f & HOT) { /* the next name anchors on itself: its own window */
            p = s = window_of(self, region, pat, plen);
            if (s >= len) goto release_fallback;
            h = region[s];
            e = s + h;
        }
    }

release_or_fallback:
    if (result != NULL) goto release;
release_fallback:
    PyBuffer_Release(&view);
    goto fallback;
release:
    PyBuffer_Release(&view);
    return result;
fallback:
    return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
}

static PyObject *Walk_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    (void)args;
    (void)kwds;
    Walk *self = (Walk *)type->tp_alloc(type, 0);
    if (self != NULL) self->vectorcall = Walk_vectorcall;
    return (PyObject *)self;
}

static int Walk_init(Walk *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"region", "count", "size", "full", "width", "tld", "spill", "at",
                             "below", "flags", "has_tld_rules", "fallback", NULL};
    PyObject *region, *tld, *spill, *at, *below, *flags, *fallback;
    Py_ssize_t count, size, full, width;
    int has_tld_rules;
    if (self->ready) {
        PyErr_SetString(PyExc_RuntimeError, "Walk is initialized once");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OnnnnO!O!O!O!O!pO", kwlist, &region, &count,
                                     &size, &full, &width, &PyDict_Type, &tld, &PyList_Type,
                                     &spill, &PyList_Type, &at, &PyList_Type, &below,
                                     &PyList_Type, &flags, &has_tld_rules, &fallback))
        return -1;
    if (!PyDict_CheckExact(tld) || !PyList_CheckExact(spill) || !PyList_CheckExact(at) ||
        !PyList_CheckExact(below) || !PyList_CheckExact(flags)) {
        PyErr_SetString(PyExc_TypeError, "tld must be a dict, spill, at, below, flags lists");
        return -1;
    }
    if (!PyObject_CheckBuffer(region)) {
        PyErr_SetString(PyExc_TypeError, "region must support the buffer protocol");
        return -1;
    }
    if (count < 1 || size < 8 || size > 256 || full < 1 || full > 255 || width < 1 ||
        PyList_GET_SIZE(spill) < 1) {
        PyErr_SetString(PyExc_ValueError,
                        "need count >= 1, size 8..256, full 1..255, width >= 1, a spill shard");
        return -1;
    }
    if (!PyCallable_Check(fallback) || PyObject_TypeCheck(fallback, &WalkType)) {
        PyErr_SetString(PyExc_TypeError, "fallback must be the Python walk");
        return -1;
    }
    PyObject *shards = PyList_AsTuple(spill);
    if (shards == NULL) return -1;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(shards); i++) {
        if (!PyDict_CheckExact(PyTuple_GET_ITEM(shards, i))) {
            Py_DECREF(shards);
            PyErr_SetString(PyExc_TypeError, "spill must be a list of dicts");
            return -1;
        }
    }
    self->region = Py_NewRef(region);
    self->tld = Py_NewRef(tld);
    self->spill = shards;
    self->at = Py_NewRef(at);
    self->below = Py_NewRef(below);
    self->flags = Py_NewRef(flags);
    self->fallback = Py_NewRef(fallback);
    self->count = count;
    self->size = size;
    self->full = full;
    self->width = width;
    self->has_tld_rules = has_tld_rules;
    self->ready = 1;
    return 0;
}

static int Walk_traverse(Walk *self, visitproc visit, void *arg) {
    Py_VISIT(self->region);
    Py_VISIT(self->tld);
    Py_VISIT(self->spill);
    Py_VISIT(self->at);
    Py_VISIT(self->below);
    Py_VISIT(self->flags);
    Py_VISIT(self->fallback);
    return 0;
}

static int Walk_clear(Walk *self) {
    Py_CLEAR(self->region);
    Py_CLEAR(self->tld);
    Py_CLEAR(self->spill);
    Py_CLEAR(self->at);
    Py_CLEAR(self->below);
    Py_CLEAR(self->flags);
    Py_CLEAR(self->fallback);
    self->ready = 0;
    return 0;
}

static void Walk_dealloc(Walk *self) {
    PyObject_GC_UnTrack(self);
    Walk_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject WalkType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "resolver.match._packed.Walk",
    .tp_doc = "Walk(region, count, size, full, width, tld, spill, at, below, flags, "
              "has_tld_rules, fallback): walk(key, dots) -> int, PackedNames.python_lookup's "
              "walk in C (see resolver/match/packed.py)",
    .tp_basicsize = sizeof(Walk),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(Walk, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_new = Walk_new,
    .tp_init = (initproc)Walk_init,
    .tp_traverse = (traverseproc)Walk_traverse,
    .tp_clear = (inquiry)Walk_clear,
    .tp_dealloc = (destructor)Walk_dealloc,
};

static struct PyModuleDef packed_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "resolver.match._packed",
    .m_doc = "The packed name table's lookup walk (compiled).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__packed(void) {
    crc_table_init();
    if (PyType_Ready(&WalkType) < 0) return NULL;
    PyObject *m = PyModule_Create(&packed_module);
    if (m == NULL) return NULL;
    Py_INCREF(&WalkType);
    if (PyModule_AddObject(m, "Walk", (PyObject *)&WalkType) < 0) {
        Py_DECREF(&WalkType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
