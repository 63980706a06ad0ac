"""Data layer: simulate MD, prepare a cache, window datasets and DataModules."""
