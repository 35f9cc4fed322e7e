/* capture._C.DictWatch: see dict_watch.c. */
#ifndef CAPTURE_DICT_WATCH_H
#define CAPTURE_DICT_WATCH_H
#include <Python.h>
int capture_add_dict_watch(PyObject *module);
#endif
