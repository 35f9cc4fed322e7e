"""User-defined functions and methods: their calls are inlined into the graph."""
from __future__ import annotations

import functools
import inspect
import types

from capture.exc import MissingAttribute, Unsupported
from capture.skipfiles import is_inlinable_library_file, is_skipped_file, is_torch_file
from capture.variables import builder
from capture.variables.base import KnownObjectMixin, VariableTracker
from capture.variables.cells import CellBox
from capture.variables.constant import ConstantVariable
from capture.variables.dicts import DictVariable
from capture.variables.generators import GeneratorVariable
from capture.variables.lists import TupleVariable
from guards import GuardKind
from guards.sources import AttrSource, ClosureCellSource, DefaultSource, ItemSource

_CO_VARARGS = inspect.CO_VARARGS
_CO_VARKEYWORDS = inspect.CO_VARKEYWORDS
_UNSUPPORTED_FLAGS = inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR | inspect.CO_ITERABLE_COROUTINE


def bind_arguments(code: types.CodeType, defaults: list, kwdefaults: dict, args: list, kwargs: dict) -> dict:
    """Map call arguments to parameter names the way CPython does, or refuse."""
    nargs, nkw = code.co_argcount, code.co_kwonlyargcount
    names = code.co_varnames
    positional, kwonly = names[:nargs], names[nargs:nargs + nkw]
    bound: dict = {}
    extra_positional = list(args[nargs:])
    for name, value in zip(positional, args):
        bound[name] = value
    if extra_positional and not code.co_flags & _CO_VARARGS:
        raise Unsupported(f"{code.co_name}() takes {nargs} positional arguments but {len(args)} were given")
    extra_kw = {}
    posonly = set(positional[:code.co_posonlyargcount])
    for key, value in kwargs.items():
        if (key in positional and key not in posonly) or key in kwonly:
            if key in bound:
                raise Unsupported(f"{code.co_name}() got multiple values for argument {key!r}")
            bound[key] = value
        else:
            extra_kw[key] = value
    if extra_kw and not code.co_flags & _CO_VARKEYWORDS:
        raise Unsupported(f"{code.co_name}() got an unexpected keyword argument {next(iter(extra_kw))!r}")
    first_default = nargs - len(defaults)
    for i, name in enumerate(positional):
        if name not in bound:
            if i < first_default:
                raise Unsupported(f"{code.co_name}() missing required argument {name!r}")
            bound[name] = defaults[i - first_default]
    for name in kwonly:
        if name not in bound:
            if name not in kwdefaults:
                raise Unsupported(f"{code.co_name}() missing keyword-only argument {name!r}")
            bound[name] = kwdefaults[name]
    index = nargs + nkw
    if code.co_flags & _CO_VARARGS:
        bound[names[index]] = TupleVariable(extra_positional)
        index += 1
    if code.co_flags & _CO_VARKEYWORDS:
        bound[names[index]] = DictVariable(extra_kw)
    return bound


def inline_code(tx, code, f_globals, bound: dict, cells: dict, name: str):
    if code.co_flags & _UNSUPPORTED_FLAGS:
        raise Unsupported(f"call to coroutine or async generator {name}")
    is_generator = bool(code.co_flags & inspect.CO_GENERATOR)
    child = tx.inlined(code, f_globals, bound, cells, generator=is_generator, func_name=name)
    if is_generator:
        return GeneratorVariable(child, name)  # runs when iterated
    return child.run()


class UserFunctionVariable(KnownObjectMixin, VariableTracker):
    """A real Python function object reached through a source."""

    def __init__(self, fn: types.FunctionType, source=None):
        self.fn = fn
        self.source = source

    def python_type(self):
        return types.FunctionType

    def var_getattr(self, tx, name):
        if name in ("__name__", "__qualname__", "__module__", "__doc__", "__code__"):
            return ConstantVariable(getattr(self.fn, name))
        if name in self.fn.__dict__:
            return builder.wrap(tx, self.fn.__dict__[name], AttrSource(self.source, name) if self.source else None)
        raise Unsupported(f"attribute {name} of function {self.fn.__name__}")

    def call(self, tx, args, kwargs):
        fn = self.fn
        if fn is inspect.signature and len(args) == 1 and not kwargs:
            return _signature(args[0])
        if fn is inspect.getattr_static and 2 <= len(args) <= 3 and not kwargs \
                and hasattr(args[0], "static_getattr") and args[1].is_python_constant():
            try:
                return args[0].static_getattr(tx, args[1].as_python_constant())
            except MissingAttribute:
                if len(args) == 3:
                    return args[2]
                raise
        if fn in _INSPECT_PREDICATES and len(args) == 1 and not kwargs:
            return ConstantVariable(issubclass(args[0].python_type(), _INSPECT_PREDICATES[fn]))
        filename = fn.__code__.co_filename
        if is_skipped_file(filename) and not is_torch_file(filename) \
                and not is_inlinable_library_file(filename):
            raise Unsupported(f"call to library function {fn.__module__}.{fn.__qualname__}")
        src = self.source
        defaults = [builder.wrap(tx, v, DefaultSource(src, i) if src else None)
                    for i, v in enumerate(fn.__defaults__ or ())]
        kwdefaults = {k: builder.wrap(tx, v, DefaultSource(src, k, kw=True) if src else None)
                      for k, v in (fn.__kwdefaults__ or {}).items()}
        bound = bind_arguments(fn.__code__, defaults, kwdefaults, args, kwargs)
        cells = {}
        for i, name in enumerate(fn.__code__.co_freevars):
            # a function made for real by this trace (a method of a class defined in the frame)
            # reads the traced cell its real cell stands for
            cells[name] = tx.output.local_cell(fn.__closure__[i]) or CellBox(
                real_cell=fn.__closure__[i], source=ClosureCellSource(src, i, name) if src else None)
        return inline_code(tx, fn.__code__, fn.__globals__, bound, cells, fn.__qualname__)

    def reconstruct(self, cg):
        return cg.source_expr(self.source) if self.source is not None else cg.object_ref(self.fn)

    def __repr__(self):
        return f"UserFunctionVariable({self.fn.__qualname__})"


# Function attributes that only change what reading them gives (no behaviour).
_WRITABLE_FUNCTION_ATTRS = {"__name__", "__qualname__", "__module__", "__doc__", "__annotations__"}


class NestedFunctionVariable(VariableTracker):
    """A function made by MAKE_FUNCTION while tracing (closures, lambdas, comprehensions)."""

    frame_object = True

    def __init__(self, code, f_globals, defaults, kwdefaults, closure, annotations=None):
        self.code = code
        self.f_globals = f_globals
        self.defaults = defaults
        self.kwdefaults = kwdefaults
        self.closure = closure
        self.annotations = annotations  # the (name, value, ...) tuple MAKE_FUNCTION took
        self.attrs: dict = {}  # its __dict__ (attributes set on it: functools.wraps's __wrapped__ ...)
        self.specials: dict = {}  # __name__, __doc__ ... set on it (not in __dict__)

    def python_type(self):
        return types.FunctionType

    def children(self):
        return tuple(v for v in (self.defaults, self.kwdefaults, self.closure) if v is not None)

    def truth(self, tx):
        return True

    def var_getattr(self, tx, name):
        if name in self.specials:
            return self.specials[name]
        if name in self.attrs and not hasattr(types.FunctionType, name):
            return self.attrs[name]
        if name in ("__name__", "__qualname__"):
            return ConstantVariable(self.code.co_name if name == "__name__" else self.code.co_qualname)
        if name == "__module__":
            return ConstantVariable(self.f_globals.get("__name__"))
        if name == "__doc__":
            consts = self.code.co_consts
            return ConstantVariable(consts[0] if consts and isinstance(consts[0], str) else None)
        if name == "__dict__":
            view = DictVariable({})
            view.items = self.attrs  # shared, not copied: writes through it are attributes
            return view
        if name == "__annotations__":
            self.specials[name] = self._annotations()  # made once, then the same dict
            return self.specials[name]
        if not hasattr(types.FunctionType, name):
            raise MissingAttribute(f"'function' object has no attribute {name!r}")
        raise Unsupported(f"attribute {name} of a nested function")

    def _annotations(self):
        if self.annotations is None:
            return DictVariable({})
        items = list(self.annotations.iter_items(None))
        if not all(k.is_python_constant() for k in items[::2]):
            raise Unsupported("annotations of a nested function")
        return DictVariable({k.as_python_constant(): v for k, v in zip(items[::2], items[1::2])})

    def stand_in(self) -> types.FunctionType:
        """A real function with this one's code, defaults and annotations (constants only),
        for questions about its signature; its cells are empty (it is never called)."""
        def constants(vt, what):
            if vt is None:
                return None
            if not vt.is_python_constant():
                raise Unsupported(f"inspect.signature of a nested function with traced {what}")
            return vt.as_python_constant()
        fn = types.FunctionType(self.code, {}, self.code.co_name, constants(self.defaults, "defaults"),
                                tuple(types.CellType() for _ in self.code.co_freevars))
        fn.__kwdefaults__ = constants(self.kwdefaults, "keyword defaults")
        if "__annotations__" in self.specials or self.annotations is not None:
            fn.__annotations__ = constants(self.specials.get("__annotations__") or self._annotations(), "annotations")
        return fn

    def store_attr(self, tx, name, value):
        if name in _WRITABLE_FUNCTION_ATTRS:
            self.specials[name] = value
        elif hasattr(types.FunctionType, name):
            raise Unsupported(f"setting {name} of a nested function")
        else:
            self.attrs[name] = value

    def call(self, tx, args, kwargs):
        defaults = list(self.defaults.iter_items(tx)) if self.defaults is not None else []
        kwdefaults = dict(self.kwdefaults.items) if self.kwdefaults is not None else {}
        bound = bind_arguments(self.code, defaults, kwdefaults, args, kwargs)
        cells = {}
        if self.closure is not None:
            for name, box in zip(self.code.co_freevars, self.closure.iter_items(tx)):
                cells[name] = box
        return inline_code(tx, self.code, self.f_globals, bound, cells, self.code.co_qualname)

    def reconstruct(self, cg):
        raise Unsupported("returning a function defined inside the compiled frame")

    def __repr__(self):
        return f"NestedFunctionVariable({self.code.co_qualname})"


# inspect's type predicates: what ``isinstance`` of the tracked value's type answers.
_INSPECT_PREDICATES = {inspect.isfunction: types.FunctionType, inspect.isclass: type,
                       inspect.ismethod: types.MethodType, inspect.ismodule: types.ModuleType,
                       inspect.isbuiltin: types.BuiltinFunctionType, inspect.isgenerator: types.GeneratorType}


def _signature(fn_vt) -> VariableTracker:
    """``inspect.signature`` of a function we track: a fact about its (guarded) code."""
    if isinstance(fn_vt, UserMethodVariable):
        sig = _signature(fn_vt.func).as_python_constant()
        return ConstantVariable(sig.replace(parameters=list(sig.parameters.values())[1:]))
    if isinstance(fn_vt, NestedFunctionVariable):
        return ConstantVariable(inspect.signature(fn_vt.stand_in()))
    real = fn_vt.underlying()
    if isinstance(real, types.FunctionType):  # a user or torch function, identity-guarded
        return ConstantVariable(inspect.signature(real))
    raise Unsupported(f"inspect.signature of {fn_vt}")


class UserMethodVariable(VariableTracker):
    """``obj.method``: a function with its first argument bound."""

    def __init__(self, func: VariableTracker, self_vt: VariableTracker):
        self.func = func
        self.self_vt = self_vt

    def python_type(self):
        return types.MethodType

    def children(self):
        return (self.func, self.self_vt)

    def truth(self, tx):
        return True

    def var_getattr(self, tx, name):
        if name == "__self__":
            return self.self_vt
        if name == "__func__":
            return self.func
        return self.func.var_getattr(tx, name)

    def call(self, tx, args, kwargs):
        return self.func.call(tx, [self.self_vt] + list(args), kwargs)

    def reconstruct(self, cg):
        return f"{cg.object_ref(types.MethodType)}({cg.reconstruct(self.func)}, {cg.reconstruct(self.self_vt)})"

    def __repr__(self):
        return f"UserMethodVariable({self.func!r}, {self.self_vt!r})"


class PartialVariable(VariableTracker):
    """``functools.partial(func, *args, **keywords)``."""

    def __init__(self, func: VariableTracker, args: list, keywords: dict, source=None):
        self.func = func
        self.args = list(args)
        self.keywords = dict(keywords)
        self.source = source

    def python_type(self):
        return functools.partial

    def children(self):
        return (self.func, *self.args, *self.keywords.values())

    def truth(self, tx):
        return True

    def var_getattr(self, tx, name):
        if name == "func":
            return self.func
        if name == "args":
            return TupleVariable(self.args)
        if name == "keywords":
            return DictVariable(self.keywords)
        raise Unsupported(f"attribute {name} of functools.partial")

    def call(self, tx, args, kwargs):
        return self.func.call(tx, self.args + list(args), {**self.keywords, **kwargs})

    def reconstruct(self, cg):
        if self.source is not None:
            return cg.source_expr(self.source)
        parts = [cg.reconstruct(self.func)] + [cg.reconstruct(a) for a in self.args]
        parts += [f"{k}={cg.reconstruct(v)}" for k, v in self.keywords.items()]
        return f"{cg.object_ref(functools.partial)}({', '.join(parts)})"


# ---- how real values become callables ----

@builder.wraps(builder.Order.COMPILED, lambda v: getattr(v, "_capture_original", None) is not None and callable(v))
def _wrap_compiled_function(tx, value, source):
    """A function made by capture.compile: its original function is traced."""
    builder.guard(tx, source, GuardKind.IDENTITY, value)
    inner_source = AttrSource(source, "_capture_original") if source is not None else None
    return builder.wrap(tx, value._capture_original, inner_source)


@builder.wraps(builder.Order.FUNCTION, lambda v: isinstance(v, types.FunctionType))
def _wrap_function(tx, value, source):
    builder.guard(tx, source, GuardKind.IDENTITY, value)
    return UserFunctionVariable(value, source)


@builder.wraps(builder.Order.FUNCTION, lambda v: isinstance(v, types.MethodType))
def _wrap_method(tx, value, source):
    func_source = AttrSource(source, "__func__") if source is not None else None
    self_source = AttrSource(source, "__self__") if source is not None else None
    func_vt = builder.wrap(tx, value.__func__, func_source)
    return UserMethodVariable(func_vt, builder.wrap(tx, value.__self__, self_source))


@builder.wraps(builder.Order.OBJECT, lambda v: type(v) is functools.partial)
def _wrap_partial(tx, value, source):
    builder.guard(tx, source, GuardKind.TYPE, functools.partial)
    sub = (lambda attr: AttrSource(source, attr)) if source is not None else (lambda attr: None)
    func = builder.wrap(tx, value.func, sub("func"))
    args = [builder.wrap(tx, a, ItemSource(sub("args"), i) if source is not None else None)
            for i, a in enumerate(value.args)]
    builder.guard(tx, sub("args"), GuardKind.LENGTH, len(value.args))
    builder.guard(tx, sub("keywords"), GuardKind.DICT_KEYS, tuple(value.keywords))
    keywords = {k: builder.wrap(tx, v, ItemSource(sub("keywords"), k) if source is not None else None)
                for k, v in value.keywords.items()}
    return PartialVariable(func, args, keywords, source)


@builder.wraps(builder.Order.OBJECT, lambda v: isinstance(v, (types.GeneratorType, types.CoroutineType)))
def _refuse_generator(tx, value, source):
    raise Unsupported(f"value of type {type(value).__name__}")


@builder.constructs(builder.Order.OBJECT, lambda cls: cls is functools.partial)
def _construct_partial(tx, cls, args, kwargs):
    if not args:
        raise Unsupported("functools.partial() without a function")
    return PartialVariable(args[0], args[1:], kwargs)


@builder.wraps_result(builder.Order.LITERAL, lambda v: isinstance(v, (inspect.Signature, inspect.Parameter)))
def _signature_result(value):
    return ConstantVariable(value)  # immutable facts about a function's parameters
