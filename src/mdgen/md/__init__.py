"""The MD engine (OpenMM, the `md` extra): peptides built from sequence and simulated (`simulation`),
proteins from PDB files (`protein_simulation`), and the peptide builder both use (`peptide_builder`).

Used by `mdgen.simulate` and by sampling (sequence inputs are built and minimised, `relax=true`).
Nothing is imported here: `import mdgen.md` does not need OpenMM.
"""
