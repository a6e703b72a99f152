/*
 * resolver.dns._untrack: take a container of plain values out of the cyclic collector's sight
 * when it is made, not when the collector first looks at it.
 *
 * Why: the answer cache holds hundreds of thousands of tuples of ints, bytes and floats
 * (resolver/dns/cache.py) in one OrderedDict. CPython stops tracking such a tuple only at the
 * first collection that sees it, so each forwarded answer's tuples fill the youngest generation
 * and set off its collections; and it never stops tracking an OrderedDict, whose every entry
 * the older generations' collections then visit: a pause of hundreds of milliseconds per full
 * collection at 500k entries. Neither can ever be part of a reference cycle.
 *
 * untracked(obj) returns obj, untracked when it is a tuple, dict or OrderedDict (exact types)
 * whose items the collector does not track (ints, floats, str, bytes, untracked tuples): the
 * rule CPython applies itself to tuples and dicts, never wrong, only earlier. Anything else is
 * returned as it is. Such a dict stays untracked while only untracked keys and values are put
 * in it; the first tracked one makes the interpreter track it again.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static int tracked(PyObject *op) { return PyObject_IS_GC(op) && PyObject_GC_IsTracked(op); }

static int holds_only_untracked(PyObject *obj) {
    if (PyTuple_CheckExact(obj)) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(obj); i++) {
            if (tracked(PyTuple_GET_ITEM(obj, i))) return 0;
        }
        return 1;
    }
    if (PyDict_CheckExact(obj) || PyODict_CheckExact(obj)) {
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        while (PyDict_Next(obj, &pos, &key, &value)) {
            if (tracked(key) || tracked(value)) return 0;
        }
        return 1;
    }
    return 0;
}

static PyObject *untracked(PyObject *Py_UNUSED(module), PyObject *obj) {
    if (tracked(obj) && holds_only_untracked(obj)) PyObject_GC_UnTrack(obj);
    Py_INCREF(obj);
    return obj;
}

static PyMethodDef untrack_methods[] = {
    {"untracked", untracked, METH_O,
     "untracked(obj) -> obj: untracked by the cyclic collector when it is a tuple, dict or "
     "OrderedDict holding only objects the collector does not track"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef untrack_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "resolver.dns._untrack",
    .m_doc = "Containers of plain values out of the cyclic collector's sight from birth.",
    .m_size = -1,
    .m_methods = untrack_methods,
};

PyMODINIT_FUNC PyInit__untrack(void) { return PyModule_Create(&untrack_module); }
