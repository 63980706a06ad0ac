"""The Hydra configs of every mdgen command, installed as the package `mdgen.conf` (see setup.py).

Root configs (`train.yaml`, `sample.yaml`, ...) sit here, one per command; each directory is a config
group. Commands find them through the package (`pkg://mdgen.conf`, `mdgen.config.config_dir`).
"""
