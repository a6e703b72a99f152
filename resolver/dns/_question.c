/*
 * resolver.dns._question: read a query's question name into the matching core's name key.
 *
 * The compiled twin of `python_question_name` in resolver/dns/packet.py, which is the reference:
 * the same results, the same reasons for the same bad names, tested against each other. Why it
 * exists: turning the wire labels into a lower-case key with its dots took about 5% of a
 * first-seen blocked query's CPU in Python (a list, a bytearray, five more objects); here it is
 * one pass and the four objects the caller keeps.
 *
 * question_name(data) -> (name, (key, dots), end), or the reason the name is malformed (a str of
 * resolver.dns.packet.REASONS). `key` is resolver.match.key's form: the name in lower case with
 * "\n" appended, bytes >= 0x80 as 0x01; `name` is the lower-case name as latin-1 text (its
 * bytes as they were, lower-cased); `dots` is -1 and the offset of each "." in `key`; `end` the
 * offset just past the name's zero byte. Pointers are not followed: a question name has none.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define HEADER 12
#define MAX_NAME_WIRE 255
#define MAX_LABELS 128 /* labels of 2+ bytes each, up to the 255-byte limit's check */

static PyObject *read_name(const unsigned char *p, Py_ssize_t len) {
    Py_ssize_t pos = HEADER;
    Py_ssize_t dots[MAX_LABELS];
    Py_ssize_t labels = 0;
    for (;;) {
        if (pos >= len) return PyUnicode_FromString("truncated-question");
        unsigned l = p[pos];
        if (l == 0) break;
        if (l & 0xC0) return PyUnicode_FromString("compressed-question");
        dots[labels++] = pos - 13;
        pos += l + 1;
        if (pos - HEADER >= MAX_NAME_WIRE) return PyUnicode_FromString("name-too-long");
    }
    if (pos == HEADER) return Py_BuildValue("(s(y[i])n)", "", "\n", -1, (Py_ssize_t)HEADER + 1);
    /* labels' bytes from 13 to pos - 1, then the root's zero byte at pos */
    Py_ssize_t klen = pos - HEADER; /* the name's text and the "\n" */
    unsigned char text[MAX_NAME_WIRE], k[MAX_NAME_WIRE];
    Py_ssize_t next = 1; /* the next label's dot (dots[0] is the sentinel -1) */
    for (Py_ssize_t i = 0; i < klen - 1; i++) {
        unsigned char c = p[HEADER + 1 + i];
        if (next < labels && i == dots[next]) {
            c = '.';
            next++;
        } else if (c == '.') {
            return PyUnicode_FromString("dot-in-label"); /* it would match like two labels */
        } else if (c >= 'A' && c <= 'Z') {
            c |= 0x20;
        }
        text[i] = c;
        k[i] = c >= 0x80 ? 0x01 : c;
    }
    k[klen - 1] = '\n';
    PyObject *list = PyList_New(labels);
    if (list == NULL) return NULL;
    for (Py_ssize_t i = 0; i < labels; i++) {
        PyObject *v = PyLong_FromSsize_t(dots[i]);
        if (v == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, v);
    }
    return Py_BuildValue("(N(NN)n)", PyUnicode_DecodeLatin1((const char *)text, klen - 1, NULL),
                         PyBytes_FromStringAndSize((const char *)k, klen), list, pos + 1);
}

static PyObject *question_name(PyObject *Py_UNUSED(module), PyObject *arg) {
    if (PyBytes_CheckExact(arg))
        return read_name((const unsigned char *)PyBytes_AS_STRING(arg), PyBytes_GET_SIZE(arg));
    Py_buffer view; /* any other bytes-like object, as the Python twin takes */
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    PyObject *out = read_name(view.buf, view.len);
    PyBuffer_Release(&view);
    return out;
}

static PyMethodDef question_methods[] = {
    {"question_name", question_name, METH_O,
     "question_name(data) -> (name, (key, dots), end) or the reason it is malformed (a str)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef question_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "resolver.dns._question",
    .m_doc = "A query's question name as the matching core's name key (compiled).",
    .m_size = -1,
    .m_methods = question_methods,
};

PyMODINIT_FUNC PyInit__question(void) { return PyModule_Create(&question_module); }
