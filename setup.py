"""Package layout only; the project's metadata, dependencies and scripts are in pyproject.toml.

`conf/` (the Hydra configs, top level of the repository) is shipped as the package `mdgen.conf`, so a
wheel carries them and every command finds them as package data (`mdgen.config.config_dir`). pyproject's
`[tool.setuptools]` table cannot both discover the packages under src/ and add one mapped from another
directory, hence this file. An editable install (`pip install -e .`) maps `mdgen.conf` to the
repository's conf/, so edits there are seen at once.
"""

from setuptools import find_namespace_packages, find_packages, setup

# conf/ and its group directories (conf/model, conf/hydra/help, ...), as mdgen.conf and mdgen.conf.<group>
GROUPS = find_namespace_packages("conf", exclude=["*__pycache__"])
CONFIG_PACKAGES = ["mdgen.conf", *(f"mdgen.conf.{group}" for group in GROUPS)]

setup(
    packages=[*find_packages("src"), *CONFIG_PACKAGES],
    package_dir={"": "src", "mdgen.conf": "conf"},
    package_data={"mdgen": ["py.typed"], **{package: ["*.yaml"] for package in CONFIG_PACKAGES}},
)
