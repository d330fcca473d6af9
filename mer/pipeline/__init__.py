"""The preprocessing pipeline: the engine (stage declaration and registry, plan, runner, clip context, frame I/O)
and one subpackage per topic (``face``, ``temporal``, ``flow``; ``ingest`` is one module), each holding its
kernels and a ``stages`` module that registers its stages when the topic is imported. :mod:`mer.pipeline.catalog`
imports every topic. Importing this package imports no topic."""
