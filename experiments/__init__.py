"""The studies (defined as Hydra experiment files under `conf/experiment/`) and their reports.

`python -m experiments.report` turns finished multiruns into tables and figures.
"""
