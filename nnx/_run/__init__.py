"""How a step runs, at the edge of nnx: the runners, the one place that picks among them
(``choose``), and ``nnx.compile`` for functions of parts (``function``).

The core (``Model``, the training loop, layers, losses, optimizers) runs the one step,
``Model.train_step``, and names no mode; everything that knows a compiler, a lazy library or
a Dask cluster exists lives here:

- ``runners``: the runner contract (``Eager``, public as ``nnx.Runner``), the eager step on a
  lazy library (``Lazy``) and the compiled step (``Compiled``);
- ``compiled`` and ``tracing``: the step as a pure function of (state, batch), and the checks
  that keep a traced step honest;
- ``many``: many compiled steps per call (``steps_per_execution``);
- ``distributed``, ``cluster`` and ``replica``: coarse data-parallel training on a Dask
  cluster, the client side and the workers' side;
- ``choose``: which runner takes a model and its data;
- ``function``: ``nnx.compile``.
"""
