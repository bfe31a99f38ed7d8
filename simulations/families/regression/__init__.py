"""The regression family: its config (`config`: GridConfig), the compositional task (`tasks`,
docs/tasks.md) and its variants (`task_registry`: name -> task class), its bundle trainer (`train`), the
grid's cells, bundles and rows (`family`, run by `python -m simulations.grid`), the regime sweep
(`regime`, `python -m simulations.families.regression.regime`), its presets (presets/*.yaml: every
regression grid preset, `python -m simulations.grid --preset NAME`, and the regime sweeps; configs/*.yaml
are generated copies, `copies`) and its row record (`schema`).
"""
