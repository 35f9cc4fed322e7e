/*
 * capture._C -- the PEP 523 frame-evaluation hook of capture (CPython 3.11).
 *
 * Module API (see tests/test_eval_frame.py for executable examples):
 *
 *   set_callback(cb)    -> previous callback of this thread (None if none).
 *                          cb=None disables the hook for this thread.
 *   get_callback()      -> this thread's callback, or None (also None while the
 *                          thread is inside its callback or a guard).
 *   get_cache(code)     -> the list of cache entries stored on `code`, or None.
 *   set_cache(code, l)  -> store list `l` (by reference) on `code`; None clears.
 *   set_skip(code)      -> the hook always runs `code` as is.
 *   is_skipped(code)    -> bool.
 *   _hook_installed()   -> bool: the interpreter-wide hook is ours right now.
 *   _active_threads()   -> number of threads with a callback set.
 *
 * While a trace or profile function is set on the thread (sys.settrace,
 * sys.setprofile), every frame runs as is: tools see the user's own lines.
 *
 * A cache entry is a tuple (guard_fn, code, ...): guard_fn(func, *args) is
 * called and, if it returns exactly True, `code` runs as a new function
 * (original globals and closure) taking all of the frame's arguments
 * positionally.  Entries are tried in list order.
 *
 * On a miss, callback(func, args_tuple) is called with the hook suspended for
 * this thread.  It returns None (run the frame as is) or a code object (run it
 * like a cache hit).
 *
 * Everything that depends on the layout of CPython 3.11's frames is in the
 * section "CPython 3.11 specifics" below.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "dict_watch.h"
#include "calls.h"

#if PY_VERSION_HEX < 0x030B0000 || PY_VERSION_HEX >= 0x030C0000
#error "capture._C supports CPython 3.11 only"
#endif

#define Py_BUILD_CORE
#include <internal/pycore_frame.h>
#undef Py_BUILD_CORE

/* ------------------------------------------------------------------------ */
/* CPython 3.11 specifics                                                    */
/* ------------------------------------------------------------------------ */

typedef _PyInterpreterFrame Frame;

#define CODE_FLAGS_NEVER_HOOKED \
    (CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR | CO_ITERABLE_COROUTINE)

static inline PyCodeObject *frame_code(Frame *f) { return f->f_code; }
static inline PyObject *frame_func(Frame *f) { return (PyObject *)f->f_func; }
static inline PyObject *frame_globals(Frame *f) { return f->f_globals; }

/* The frame's closure (borrowed, may be NULL). */
static inline PyObject *frame_closure(Frame *f)
{
    return PyFunction_GET_CLOSURE((PyObject *)f->f_func);
}

/* Number of argument slots at the start of localsplus: positional (incl.
 * positional-only), keyword-only, then *args tuple and **kwargs dict. */
static inline Py_ssize_t code_nargs(PyCodeObject *co)
{
    Py_ssize_t n = (Py_ssize_t)co->co_argcount + co->co_kwonlyargcount;
    if (co->co_flags & CO_VARARGS) {
        n++;
    }
    if (co->co_flags & CO_VARKEYWORDS) {
        n++;
    }
    return n;
}

/* The hook sees a frame before its first instruction (before MAKE_CELL /
 * COPY_FREE_VARS), so localsplus[0:nargs] are exactly the arguments as
 * passed (raw values, not cells).  Returns NULL when the frame is not one we
 * may take over. */
static inline PyObject **frame_args(Frame *f, Py_ssize_t nargs)
{
    PyObject **args = f->localsplus;
    for (Py_ssize_t i = 0; i < nargs; i++) {
        if (args[i] == NULL) {
            return NULL;
        }
    }
    return args;
}

/* Frames the hook never takes over.  frame_obj is checked defensively: a
 * frame that is not run by the default evaluator never gets its `previous`
 * link set, and _PyFrame_Clear would read it if a frame object outlived the
 * frame.  (At hook time the frame is not yet linked into the thread's frame
 * chain, so nothing can materialise its frame object; this never fires in
 * practice.) */
static inline int frame_is_hookable(Frame *f, int throw_flag)
{
    PyCodeObject *co = f->f_code;
    if (throw_flag) {
        return 0;
    }
    if (co->co_flags & CODE_FLAGS_NEVER_HOOKED) {
        return 0;
    }
    if (!(co->co_flags & CO_OPTIMIZED) || f->f_locals != NULL) {
        return 0;
    }
    if (f->f_func == NULL || f->frame_obj != NULL) {
        return 0;
    }
    return 1;
}

/* A trace or profile function is set on this thread (sys.settrace / sys.setprofile:
 * coverage, debuggers, profilers).  Frames then run as plain Python, so the
 * tool sees every line and call of the user's code; compiled code would hide
 * the lines and calls it captured into graphs. */
static inline int thread_is_traced(PyThreadState *tstate)
{
    return tstate->c_tracefunc != NULL || tstate->c_profilefunc != NULL;
}

static inline PyObject *eval_default(PyThreadState *tstate, Frame *f, int throw_flag)
{
    return _PyEval_EvalFrameDefault(tstate, f, throw_flag);
}

static inline int code_nfreevars(PyCodeObject *co) { return co->co_nfreevars; }

/* ------------------------------------------------------------------------ */
/* State                                                                     */
/* ------------------------------------------------------------------------ */

typedef struct {
    PyObject *callback;     /* strong reference, NULL when disabled */
    int suspended;          /* > 0 while inside the callback or a guard */
    PyCodeObject *bypass;   /* borrowed: run the next frame of this code as is */
} ThreadState;

static _Thread_local ThreadState tls;

static Py_ssize_t extra_index = -1;   /* our slot in every code's co_extra */
static PyObject *skip_marker = NULL;  /* stored in the slot by set_skip */
static Py_ssize_t active_threads = 0; /* threads whose callback is set */

static PyObject *hook(PyThreadState *tstate, Frame *frame, int throw_flag);

static void free_extra(void *p)
{
    Py_XDECREF((PyObject *)p);
}

/* Borrowed reference to the object in code's extra slot, or NULL. */
static inline PyObject *get_extra(PyObject *code)
{
    void *extra = NULL;
    if (_PyCode_GetExtra(code, extra_index, &extra) < 0) {
        PyErr_Clear();
        return NULL;
    }
    return (PyObject *)extra;
}

/* Store a new reference to obj (may be NULL) in code's extra slot.
 * _PyCode_SetExtra calls free_extra on the previous value itself; we keep our
 * own reference to the previous value until the slot holds the new one, so a
 * finaliser run by its release never sees a dangling slot. */
static int set_extra(PyObject *code, PyObject *obj)
{
    PyObject *old = get_extra(code);
    Py_XINCREF(old);
    Py_XINCREF(obj);
    if (_PyCode_SetExtra(code, extra_index, obj) < 0) {
        Py_XDECREF(obj);
        Py_XDECREF(old);
        return -1;
    }
    Py_XDECREF(old);
    return 0;
}

static int install_hook(void)
{
    PyInterpreterState *interp = PyInterpreterState_Get();
    _PyFrameEvalFunction cur = _PyInterpreterState_GetEvalFrameFunc(interp);
    if (cur == hook) {
        return 0;
    }
    if (cur != _PyEval_EvalFrameDefault) {
        PyErr_SetString(PyExc_RuntimeError,
                        "capture._C: another PEP 523 frame evaluator is installed");
        return -1;
    }
    _PyInterpreterState_SetEvalFrameFunc(interp, hook);
    return 0;
}

static void uninstall_hook(void)
{
    PyInterpreterState *interp = PyInterpreterState_Get();
    if (_PyInterpreterState_GetEvalFrameFunc(interp) == hook) {
        _PyInterpreterState_SetEvalFrameFunc(interp, _PyEval_EvalFrameDefault);
    }
}

/* ------------------------------------------------------------------------ */
/* The hook                                                                  */
/* ------------------------------------------------------------------------ */

/* Run `code` as a new function over the frame's globals and closure with the
 * frame's arguments.  The frame itself is left alone: the caller
 * (_PyEval_Vector) clears and pops it when we return. */
static PyObject *run_code(ThreadState *ts, Frame *frame, PyObject *code,
                          PyObject **args, Py_ssize_t nargs)
{
    PyObject *closure = frame_closure(frame);
    Py_ssize_t nfree = closure ? PyTuple_GET_SIZE(closure) : 0;
    if (code_nfreevars((PyCodeObject *)code) != nfree) {
        PyErr_Format(PyExc_ValueError,
                     "capture._C: replacement code %R has %d free variables, "
                     "the frame's closure has %zd",
                     code, code_nfreevars((PyCodeObject *)code), nfree);
        return NULL;
    }
    PyObject *fn = PyFunction_New(code, frame_globals(frame));
    if (fn == NULL) {
        return NULL;
    }
    if (closure != NULL && PyFunction_SetClosure(fn, closure) < 0) {
        Py_DECREF(fn);
        return NULL;
    }
    /* The replacement's own frame is run as is (it is our code); frames it
     * calls are hooked as usual. */
    ts->bypass = (PyCodeObject *)code;
    PyObject *result = PyObject_Vectorcall(fn, args, (size_t)nargs, NULL);
    ts->bypass = NULL;
    Py_DECREF(fn);
    return result;
}

/* guard(func, *args): 1 if it returned True, 0 if not (or raised an
 * Exception), -1 on a BaseException that must propagate or no memory. */
static int call_guard(ThreadState *ts, PyObject *guard, PyObject *func,
                      PyObject **args, Py_ssize_t nargs)
{
    PyObject *small[10];
    PyObject **buf = small;
    Py_ssize_t total = nargs + 2; /* slot 0 is scratch for the callee */
    if (total > (Py_ssize_t)(sizeof(small) / sizeof(small[0]))) {
        buf = PyMem_Malloc((size_t)total * sizeof(PyObject *));
        if (buf == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    buf[0] = NULL;
    buf[1] = func;
    for (Py_ssize_t i = 0; i < nargs; i++) {
        buf[2 + i] = args[i];
    }
    ts->suspended++;
    PyObject *res = PyObject_Vectorcall(
        guard, buf + 1, (size_t)(nargs + 1) | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    ts->suspended--;
    if (buf != small) {
        PyMem_Free(buf);
    }
    if (res == NULL) {
        if (PyErr_ExceptionMatches(PyExc_Exception)) {
            PyErr_Clear();
            return 0;
        }
        return -1; /* KeyboardInterrupt, SystemExit, ... */
    }
    int hit = (res == Py_True);
    Py_DECREF(res);
    return hit;
}

static PyObject *hook(PyThreadState *tstate, Frame *frame, int throw_flag)
{
    ThreadState *ts = &tls;
    if (ts->callback == NULL || ts->suspended) {
        return eval_default(tstate, frame, throw_flag);
    }
    PyCodeObject *co = frame_code(frame);
    if (ts->bypass != NULL && ts->bypass == co) {
        ts->bypass = NULL;
        return eval_default(tstate, frame, throw_flag);
    }
    if (!frame_is_hookable(frame, throw_flag) || thread_is_traced(tstate)) {
        return eval_default(tstate, frame, throw_flag);
    }
    PyObject *extra = get_extra((PyObject *)co);
    if (extra == skip_marker) {
        return eval_default(tstate, frame, throw_flag);
    }
    Py_ssize_t nargs = code_nargs(co);
    PyObject **args = frame_args(frame, nargs);
    if (args == NULL) {
        return eval_default(tstate, frame, throw_flag);
    }
    PyObject *func = frame_func(frame);

    /* Cache lookup.  Guards run arbitrary code that may replace or mutate the
     * list, so hold references and re-read the size each time. */
    if (extra != NULL && PyList_Check(extra)) {
        PyObject *cache = extra;
        Py_INCREF(cache);
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(cache); i++) {
            PyObject *entry = PyList_GET_ITEM(cache, i);
            if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) < 2 ||
                !PyCode_Check(PyTuple_GET_ITEM(entry, 1))) {
                PyErr_Format(PyExc_TypeError,
                             "capture._C: cache entry must be a tuple "
                             "(guard_fn, code, ...), got %R", entry);
                Py_DECREF(cache);
                return NULL;
            }
            Py_INCREF(entry);
            int hit = call_guard(ts, PyTuple_GET_ITEM(entry, 0), func, args, nargs);
            if (hit != 0) {
                PyObject *result = NULL;
                if (hit > 0) {
                    result = run_code(ts, frame, PyTuple_GET_ITEM(entry, 1), args, nargs);
                }
                Py_DECREF(entry);
                Py_DECREF(cache);
                return result;
            }
            Py_DECREF(entry);
        }
        Py_DECREF(cache);
    }

    /* Miss: ask the callback (a guard may have changed it). */
    PyObject *callback = ts->callback;
    if (callback == NULL) {
        return eval_default(tstate, frame, throw_flag);
    }
    Py_INCREF(callback);
    PyObject *argtuple = PyTuple_New(nargs);
    if (argtuple == NULL) {
        Py_DECREF(callback);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        Py_INCREF(args[i]);
        PyTuple_SET_ITEM(argtuple, i, args[i]);
    }
    PyObject *cbargs[3] = {NULL, func, argtuple};
    ts->suspended++;
    PyObject *res = PyObject_Vectorcall(
        callback, cbargs + 1, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    ts->suspended--;
    Py_DECREF(argtuple);
    Py_DECREF(callback);
    if (res == NULL) {
        return NULL;
    }
    if (res == Py_None) {
        Py_DECREF(res);
        return eval_default(tstate, frame, throw_flag);
    }
    if (PyCode_Check(res)) {
        PyObject *result = run_code(ts, frame, res, args, nargs);
        Py_DECREF(res);
        return result;
    }
    PyErr_Format(PyExc_TypeError,
                 "capture._C: callback must return None or a code object, got %.200s",
                 Py_TYPE(res)->tp_name);
    Py_DECREF(res);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Module functions                                                          */
/* ------------------------------------------------------------------------ */

/* Make `cb` (NULL or None: none) this thread's callback; returns the previous
 * one (a new reference, or NULL with no error set if there was none), NULL with
 * an error set if `cb` is not callable or the hook cannot be installed.  Also
 * what calls.c's call_with_callback and HookOff use. */
PyObject *capture_swap_callback(PyObject *cb)
{
    PyObject *old = tls.callback; /* owned; handed to the caller */
    PyObject *new = (cb == Py_None) ? NULL : cb;
    if (new != NULL && !PyCallable_Check(new)) {
        PyErr_Format(PyExc_TypeError,
                     "set_callback: expected a callable or None, got %.200s",
                     Py_TYPE(new)->tp_name);
        return NULL;
    }
    if (old == NULL && new != NULL) {
        if (active_threads == 0 && install_hook() < 0) {
            return NULL;
        }
        active_threads++;
    }
    else if (old != NULL && new == NULL) {
        active_threads--;
        if (active_threads == 0) {
            uninstall_hook();
        }
    }
    Py_XINCREF(new);
    tls.callback = new;
    return old;
}

static PyObject *py_set_callback(PyObject *self, PyObject *cb)
{
    PyObject *old = capture_swap_callback(cb);
    if (old == NULL && !PyErr_Occurred()) {
        Py_RETURN_NONE;
    }
    return old;
}

static PyObject *py_get_callback(PyObject *self, PyObject *unused)
{
    if (tls.callback == NULL || tls.suspended) {
        Py_RETURN_NONE;
    }
    return Py_NewRef(tls.callback);
}

static int check_code(PyObject *code, const char *fname)
{
    if (!PyCode_Check(code)) {
        PyErr_Format(PyExc_TypeError, "%s: expected a code object, got %.200s",
                     fname, Py_TYPE(code)->tp_name);
        return -1;
    }
    return 0;
}

static PyObject *py_get_cache(PyObject *self, PyObject *code)
{
    if (check_code(code, "get_cache") < 0) {
        return NULL;
    }
    PyObject *extra = get_extra(code);
    if (extra != NULL && PyList_Check(extra)) {
        return Py_NewRef(extra);
    }
    Py_RETURN_NONE;
}

static PyObject *py_set_cache(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "set_cache expected 2 arguments, got %zd", nargs);
        return NULL;
    }
    PyObject *code = args[0], *obj = args[1];
    if (check_code(code, "set_cache") < 0) {
        return NULL;
    }
    if (obj != Py_None && !PyList_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "set_cache: expected a list or None, got %.200s",
                     Py_TYPE(obj)->tp_name);
        return NULL;
    }
    if (set_extra(code, obj == Py_None ? NULL : obj) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *py_set_skip(PyObject *self, PyObject *code)
{
    if (check_code(code, "set_skip") < 0) {
        return NULL;
    }
    if (set_extra(code, skip_marker) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *py_is_skipped(PyObject *self, PyObject *code)
{
    if (check_code(code, "is_skipped") < 0) {
        return NULL;
    }
    return PyBool_FromLong(get_extra(code) == skip_marker);
}

static PyObject *py_hook_installed(PyObject *self, PyObject *unused)
{
    PyInterpreterState *interp = PyInterpreterState_Get();
    return PyBool_FromLong(_PyInterpreterState_GetEvalFrameFunc(interp) == hook);
}

static PyObject *py_active_threads(PyObject *self, PyObject *unused)
{
    return PyLong_FromSsize_t(active_threads);
}

static PyMethodDef methods[] = {
    {"set_callback", py_set_callback, METH_O,
     "set_callback(cb) -> previous callback of this thread (None if none).\n"
     "cb(func, args_tuple) is called on a cache miss; None disables."},
    {"get_callback", py_get_callback, METH_NOARGS,
     "get_callback() -> this thread's callback or None."},
    {"get_cache", py_get_cache, METH_O,
     "get_cache(code) -> the list of (guard_fn, code) entries or None."},
    {"set_cache", (PyCFunction)(void (*)(void))py_set_cache, METH_FASTCALL,
     "set_cache(code, entries) -> None. Stores the list itself; None clears."},
    {"set_skip", py_set_skip, METH_O,
     "set_skip(code) -> None. The hook always runs code as is."},
    {"is_skipped", py_is_skipped, METH_O, "is_skipped(code) -> bool."},
    {"_hook_installed", py_hook_installed, METH_NOARGS,
     "_hook_installed() -> bool: the interpreter's frame evaluator is ours."},
    {"_active_threads", py_active_threads, METH_NOARGS,
     "_active_threads() -> number of threads with a callback set."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT,
    .m_name = "capture._C",
    .m_doc = "PEP 523 frame evaluation hook of capture (CPython 3.11).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__C(void)
{
    if (extra_index < 0) {
        extra_index = _PyEval_RequestCodeExtraIndex(free_extra);
        if (extra_index < 0) {
            PyErr_SetString(PyExc_RuntimeError,
                            "capture._C: no free code extra index");
            return NULL;
        }
    }
    if (skip_marker == NULL) {
        skip_marker = PyObject_CallNoArgs((PyObject *)&PyBaseObject_Type);
        if (skip_marker == NULL) {
            return NULL;
        }
    }
    PyObject *module = PyModule_Create(&moduledef);
    if (module != NULL && (capture_add_dict_watch(module) < 0 || capture_add_calls(module) < 0)) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
