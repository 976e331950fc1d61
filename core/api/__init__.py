"""The task API and the hook specs: the ``Task`` base class, the ``ftrun_…`` hooks and the plugin manager.

``Task``'s defaults are the stages' shared behaviour (its pre-flight, its predict, its
trainer), so this layer sits above the stages.
"""
