/*
 * capture._C: calls made with this thread's callback switched around them, in C so a
 * compiled call pays no Python frame and no pair of set_callback calls for it.
 *
 *   call_with_callback(cb, fn, args, kwargs)
 *       -> fn(*args, **kwargs) with `cb` as this thread's callback, the previous one
 *          restored afterwards (also when fn raises).  What a compiled function's
 *          wrapper runs (capture/api.py).
 *   HookOff(fn)
 *       -> a callable: HookOff(fn)(*a, **k) is fn(*a, **k) with the hook off for
 *          this thread (no callback), the previous callback restored afterwards;
 *          `.compiled` is fn.  Rewritten frames call a compiled graph through it
 *          (capture/runtime.py's run_without_hook).
 *
 * Both keep the previous callback on the C stack, so nested and recursive calls each
 * restore their own.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include "calls.h"

/* Put `previous` (a reference we own, may be NULL) back as the callback after a call
 * that returned `result` (NULL if it raised).  A failure to restore (another PEP 523
 * evaluator appeared meanwhile) is raised unless the call already raised. */
static PyObject *restore_callback(PyObject *previous, PyObject *result)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *current = capture_swap_callback(previous);
    Py_XDECREF(previous);
    if (current == NULL && PyErr_Occurred()) {
        if (result == NULL) {
            PyErr_Clear(); /* the call's own exception wins */
        }
        else {
            Py_DECREF(result);
            result = NULL;
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(tb);
            return NULL;
        }
    }
    Py_XDECREF(current);
    PyErr_Restore(type, value, tb);
    return result;
}

static PyObject *call_with_callback(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "call_with_callback expected 4 arguments, got %zd", nargs);
        return NULL;
    }
    PyObject *callback = args[0], *fn = args[1], *fargs = args[2], *kwargs = args[3];
    if (!PyTuple_Check(fargs) || (kwargs != Py_None && !PyDict_Check(kwargs))) {
        PyErr_SetString(PyExc_TypeError, "call_with_callback: args must be a tuple, kwargs a dict or None");
        return NULL;
    }
    if (callback == Py_None || !PyCallable_Check(callback)) {
        PyErr_SetString(PyExc_TypeError, "call_with_callback: the callback must be callable");
        return NULL;
    }
    PyObject *previous = capture_swap_callback(callback);
    if (previous == NULL && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *result = PyObject_Call(fn, fargs, kwargs == Py_None ? NULL : kwargs);
    return restore_callback(previous, result);
}

typedef struct {
    PyObject_HEAD
    PyObject *compiled;
    vectorcallfunc vectorcall;
} HookOff;

static PyObject *hook_off_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    PyObject *previous = capture_swap_callback(NULL); /* never fails: no hook to install */
    PyObject *result = PyObject_Vectorcall(((HookOff *)self)->compiled, args, nargsf, kwnames);
    return restore_callback(previous, result);
}

static PyObject *hook_off_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *compiled;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "HookOff takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_UnpackTuple(args, "HookOff", 1, 1, &compiled)) {
        return NULL;
    }
    if (!PyCallable_Check(compiled)) {
        PyErr_Format(PyExc_TypeError, "HookOff: expected a callable, got %.200s", Py_TYPE(compiled)->tp_name);
        return NULL;
    }
    HookOff *self = (HookOff *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->compiled = Py_NewRef(compiled);
    self->vectorcall = hook_off_vectorcall;
    return (PyObject *)self;
}

static int hook_off_traverse(HookOff *self, visitproc visit, void *arg)
{
    Py_VISIT(self->compiled);
    return 0;
}

static int hook_off_clear(HookOff *self)
{
    Py_CLEAR(self->compiled);
    return 0;
}

static void hook_off_dealloc(HookOff *self)
{
    PyObject_GC_UnTrack(self);
    hook_off_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *hook_off_repr(HookOff *self)
{
    return PyUnicode_FromFormat("<capture HookOff %R>", self->compiled);
}

static PyMemberDef hook_off_members[] = {
    {"compiled", T_OBJECT, offsetof(HookOff, compiled), READONLY, "the callable run with the hook off"},
    {NULL},
};

static PyTypeObject HookOffType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "capture._C.HookOff",
    .tp_basicsize = sizeof(HookOff),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "HookOff(fn): calling it calls fn with this thread's frame hook off.",
    .tp_new = hook_off_new,
    .tp_dealloc = (destructor)hook_off_dealloc,
    .tp_traverse = (traverseproc)hook_off_traverse,
    .tp_clear = (inquiry)hook_off_clear,
    .tp_repr = (reprfunc)hook_off_repr,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(HookOff, vectorcall),
    .tp_members = hook_off_members,
};

static PyMethodDef call_methods[] = {
    {"call_with_callback", (PyCFunction)(void (*)(void))call_with_callback, METH_FASTCALL,
     "call_with_callback(cb, fn, args, kwargs) -> fn(*args, **kwargs) with cb as this thread's callback."},
    {NULL, NULL, 0, NULL},
};

int capture_add_calls(PyObject *module)
{
    if (PyType_Ready(&HookOffType) < 0) {
        return -1;
    }
    if (PyModule_AddObjectRef(module, "HookOff", (PyObject *)&HookOffType) < 0) {
        return -1;
    }
    return PyModule_AddFunctions(module, call_methods);
}
