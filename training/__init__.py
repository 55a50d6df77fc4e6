"""The toy model's lab: data, trainers and evaluation of the models stepviz ships (not installed with stepviz).

Run from the repository root, e.g. `python -m training.train --out DIR`; each shipped model's exact command,
figures and loss curve are in training/models/<model>/.
"""
