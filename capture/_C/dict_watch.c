/*
 * capture._C.DictWatch -- "have these dicts changed since I last looked?"
 *
 * CPython 3.11 gives every dict a version tag (PEP 509) drawn from one global
 * counter and renewed on each change, so an unchanged tag means the same keys
 * bound to the same objects.  A guard that only reads identities and immutable
 * values through a set of dicts (a module tree's __dict__, _modules,
 * _parameters and hook tables) can skip all of those reads while the watch
 * holds; when it does not, the guard runs its full checks and re-arms.
 *
 *   w = DictWatch((d1, d2, ...))   records the current versions
 *   w = DictWatch()  disarmed: says "changed" until rearmed
 *   w()        -> True while none of the dicts changed
 *   w.rearm((d1, d2, ...))  -> None: watch these dicts from now on
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "dict_watch.h"

typedef struct {
    PyObject_HEAD
    PyObject *dicts;        /* tuple of dicts (strong refs) */
    uint64_t *versions;
    Py_ssize_t n;
    int armed;
} DictWatch;

static int watch_set(DictWatch *self, PyObject *dicts)
{
    if (!PyTuple_Check(dicts)) {
        PyErr_SetString(PyExc_TypeError, "DictWatch: expected a tuple of dicts");
        return -1;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(dicts);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyDict_Check(PyTuple_GET_ITEM(dicts, i))) {
            PyErr_Format(PyExc_TypeError, "DictWatch: item %zd is %.100s, not a dict",
                         i, Py_TYPE(PyTuple_GET_ITEM(dicts, i))->tp_name);
            return -1;
        }
    }
    uint64_t *versions = PyMem_Malloc(sizeof(uint64_t) * (n ? n : 1));
    if (versions == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        versions[i] = ((PyDictObject *)PyTuple_GET_ITEM(dicts, i))->ma_version_tag;
    }
    Py_INCREF(dicts);
    Py_XSETREF(self->dicts, dicts);
    PyMem_Free(self->versions);
    self->versions = versions;
    self->n = n;
    self->armed = 1;
    return 0;
}

static int watch_init(DictWatch *self, PyObject *args, PyObject *kwargs)
{
    PyObject *dicts = NULL;
    if (!PyArg_ParseTuple(args, "|O!:DictWatch", &PyTuple_Type, &dicts)) {
        return -1;
    }
    if (dicts == NULL) {
        self->armed = 0;
        return 0;
    }
    return watch_set(self, dicts);
}

static PyObject *watch_call(DictWatch *self, PyObject *args, PyObject *kwargs)
{
    if (!self->armed) {
        Py_RETURN_FALSE;
    }
    for (Py_ssize_t i = 0; i < self->n; i++) {
        if (((PyDictObject *)PyTuple_GET_ITEM(self->dicts, i))->ma_version_tag != self->versions[i]) {
            Py_RETURN_FALSE;
        }
    }
    Py_RETURN_TRUE;
}

static PyObject *watch_rearm(DictWatch *self, PyObject *dicts)
{
    if (watch_set(self, dicts) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *watch_len(DictWatch *self, PyObject *unused)
{
    return PyLong_FromSsize_t(self->n);
}

static void watch_dealloc(DictWatch *self)
{
    PyObject_GC_UnTrack(self);
    Py_CLEAR(self->dicts);
    PyMem_Free(self->versions);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int watch_traverse(DictWatch *self, visitproc visit, void *arg)
{
    Py_VISIT(self->dicts);
    return 0;
}

static int watch_clear(DictWatch *self)
{
    Py_CLEAR(self->dicts);
    self->n = 0;
    self->armed = 0;
    return 0;
}

static PyMethodDef watch_methods[] = {
    {"rearm", (PyCFunction)watch_rearm, METH_O,
     "rearm(dicts) -> None: watch these dicts, from their current versions."},
    {"size", (PyCFunction)watch_len, METH_NOARGS, "size() -> number of dicts watched."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject DictWatchType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "capture._C.DictWatch",
    .tp_basicsize = sizeof(DictWatch),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "DictWatch(dicts): calling it says whether none of the dicts changed.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)watch_init,
    .tp_call = (ternaryfunc)watch_call,
    .tp_dealloc = (destructor)watch_dealloc,
    .tp_traverse = (traverseproc)watch_traverse,
    .tp_clear = (inquiry)watch_clear,
    .tp_methods = watch_methods,
};

int capture_add_dict_watch(PyObject *module)
{
    if (PyType_Ready(&DictWatchType) < 0) {
        return -1;
    }
    Py_INCREF(&DictWatchType);
    if (PyModule_AddObject(module, "DictWatch", (PyObject *)&DictWatchType) < 0) {
        Py_DECREF(&DictWatchType);
        return -1;
    }
    return 0;
}
