"""The bootstrap phases, each a module of its own that imports no other phase, the mechanism
that runs them (:mod:`bootstrap.phases.pipeline`) and their registry, in bootstrap order
(:mod:`bootstrap.phases.registry`)."""
