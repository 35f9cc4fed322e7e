/* capture._C: calls that switch this thread's callback around them; see calls.c. */
#ifndef CAPTURE_CALLS_H
#define CAPTURE_CALLS_H
#include <Python.h>
PyObject *capture_swap_callback(PyObject *cb); /* eval_frame.c */
int capture_add_calls(PyObject *module);
#endif
