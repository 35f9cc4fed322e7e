"""Variable trackers: one module per kind of value the interpreter tracks.

Every tracker module registers how real values of its kind become trackers
(``capture.variables.builder``); importing the package imports them all, in
dependency order (each module imports only those above it), so the builder's tables
are complete whatever module of the package is imported first.
"""
from capture.variables import (  # noqa: F401  (imported for their builder rules)
    base,  # VariableTracker, NULL, a bound method before its call
    builder,  # the dispatch tables: wrap, wrap_constant_result, construct
    iterators,  # iterators over known items (loops unroll over them)
    constant,  # immutable values known at trace time; folding
    sym,  # symbolic sizes (dynamic shapes) and slices with symbolic bounds
    generators,  # generator objects, run lazily
    lists,  # tuples, lists, torch.Size, namedtuples
    dicts,  # dicts with constant keys
    sets,  # sets of constants
    cells,  # closure cells
    tensor,  # tensors: an FX node and a fake tensor
    ctx_manager,  # grad-mode context managers
    functions,  # user functions, methods, functools.partial (inlined when called)
    torch,  # torch functions: graph nodes
    user_object,  # classes, instances of user classes, C callables
    model_output,  # transformers' ModelOutput built in the frame
    misc,  # Python modules, super(), os.environ
    nn_module,  # nn.Module instances
    new_module,  # nn.Module instances built inside the frame
    dict_subclass,  # instances of dict subclasses built inside the frame
    operators,  # operator.* on trackers
    builtin,  # builtins on trackers
    collections_types,  # deque, Counter, namedtuple classes made in the frame
    contextlib_managers,  # @contextmanager and ExitStack
    class_builder,  # classes defined inside the frame
)
