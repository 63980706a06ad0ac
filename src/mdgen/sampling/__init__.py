"""Task drivers that turn a trained checkpoint into trajectories (forward, transition paths, upsampling, inpainting).

`run.run_sampling` is the library entry; `python -m mdgen.sample` (src/mdgen/sample.py) is the CLI.
"""
