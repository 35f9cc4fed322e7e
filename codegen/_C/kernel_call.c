/*
 * codegen._C -- call a generated C function from Python without ctypes.
 *
 *   Kernel(address, n_args, name, owner)
 *       a callable over the C function at `address`, of signature
 *       `int64_t f(const int64_t *args)`: the "packed" entry the C emitter writes beside
 *       each run of kernels it calls from Python (codegen/emit/cpp_wrapper.py), which
 *       unpacks `args` into the run's pointers and sizes.  Calling it with exactly
 *       `n_args` Python ints (data pointers, sizes) returns the run's error word as an int.
 *       `owner` (the loaded library) is kept alive with it.
 *
 * ctypes converts each argument through its `argtypes` (about 0.1 us per argument and
 * 0.3 us per call); this is one C loop.  The GIL is released during the call, as
 * ctypes.CDLL does, so other Python threads run while a kernel does.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <structmember.h>

typedef int64_t (*packed_fn)(const int64_t *);

#define SMALL_ARGS 32

typedef struct {
    PyObject_HEAD
    packed_fn function;
    Py_ssize_t n_args;
    PyObject *name;
    PyObject *owner;
    vectorcallfunc vectorcall;
} Kernel;

static PyObject *kernel_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Kernel *k = (Kernel *)self;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames)) {
        PyErr_Format(PyExc_TypeError, "capture cpu kernel %U takes no keyword arguments", k->name);
        return NULL;
    }
    if (nargs != k->n_args) {
        PyErr_Format(PyExc_TypeError, "capture cpu kernel %U takes %zd arguments, got %zd", k->name,
                     k->n_args, nargs);
        return NULL;
    }
    int64_t small[SMALL_ARGS];
    int64_t *values = small;
    if (nargs > SMALL_ARGS) {
        values = PyMem_Malloc((size_t)nargs * sizeof(int64_t));
        if (values == NULL) {
            return PyErr_NoMemory();
        }
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        if (!PyLong_Check(args[i])) {
            PyErr_Format(PyExc_TypeError, "capture cpu kernel %U: argument %zd must be an int, got %.200s",
                         k->name, i, Py_TYPE(args[i])->tp_name);
            goto fail;
        }
        values[i] = (int64_t)PyLong_AsLongLong(args[i]);
        if (values[i] == -1 && PyErr_Occurred()) {
            goto fail;
        }
    }
    int64_t result;
    Py_BEGIN_ALLOW_THREADS
    result = k->function(values);
    Py_END_ALLOW_THREADS
    if (values != small) {
        PyMem_Free(values);
    }
    return PyLong_FromLongLong((long long)result);
fail:
    if (values != small) {
        PyMem_Free(values);
    }
    return NULL;
}

static PyObject *kernel_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *address, *name, *owner;
    Py_ssize_t n_args;
    static char *keywords[] = {"address", "n_args", "name", "owner", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OnUO:Kernel", keywords, &address, &n_args, &name, &owner)) {
        return NULL;
    }
    void *pointer = PyLong_AsVoidPtr(address);
    if (pointer == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "Kernel: the function's address is 0");
        }
        return NULL;
    }
    if (n_args < 0) {
        PyErr_SetString(PyExc_ValueError, "Kernel: n_args must be >= 0");
        return NULL;
    }
    Kernel *self = (Kernel *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->function = (packed_fn)pointer;
    self->n_args = n_args;
    self->name = Py_NewRef(name);
    self->owner = Py_NewRef(owner);
    self->vectorcall = kernel_vectorcall;
    return (PyObject *)self;
}

static int kernel_traverse(Kernel *self, visitproc visit, void *arg)
{
    Py_VISIT(self->owner);
    return 0;
}

static int kernel_clear(Kernel *self)
{
    Py_CLEAR(self->owner);
    return 0;
}

static void kernel_dealloc(Kernel *self)
{
    PyObject_GC_UnTrack(self);
    kernel_clear(self);
    Py_CLEAR(self->name);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *kernel_repr(Kernel *self)
{
    return PyUnicode_FromFormat("<capture cpu kernel %U (%zd arguments)>", self->name, self->n_args);
}

static PyMemberDef kernel_members[] = {
    {"name", T_OBJECT, offsetof(Kernel, name), READONLY, "the C function's name"},
    {"n_args", T_PYSSIZET, offsetof(Kernel, n_args), READONLY, "how many arguments it takes"},
    {NULL},
};

static PyTypeObject KernelType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "codegen._C.Kernel",
    .tp_basicsize = sizeof(Kernel),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "Kernel(address, n_args, name, owner): a generated C function's packed entry, callable.",
    .tp_new = kernel_new,
    .tp_dealloc = (destructor)kernel_dealloc,
    .tp_traverse = (traverseproc)kernel_traverse,
    .tp_clear = (inquiry)kernel_clear,
    .tp_repr = (reprfunc)kernel_repr,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(Kernel, vectorcall),
    .tp_members = kernel_members,
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT,
    .m_name = "codegen._C",
    .m_doc = "Calls into the C emitter's generated functions (see kernel_call.c).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__C(void)
{
    if (PyType_Ready(&KernelType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&moduledef);
    if (module != NULL && PyModule_AddObjectRef(module, "Kernel", (PyObject *)&KernelType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
