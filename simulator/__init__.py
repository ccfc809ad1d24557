"""A discrete-event model of the production pipeline at a scale one machine cannot run for real.

`python -m simulator` (`make simulate`) runs the scenarios of `simulator.scenarios` against the design of
`simulator.design` and prints each figure beside its target. The routing of events to FIFO groups is the real
code (`shared.model.lanes`), and the apply cost per event is calibrated by running the real
`shared.apply.applier.Applier` (`simulator.calibration`); everything AWS or WorkOS does is a rule in
`simulator.fifo`, `simulator.esm` and `simulator.partitions`, each citing its source.
"""
