#!/usr/bin/env bash
# Download, on a machine with pip access, the wheels that benchmarks/gpu.sh installs on a GPU
# machine without a package index: the packages the study needs beyond a CUDA image that already
# holds torch, transformers, pandas, pyarrow, seaborn, scipy, scikit-learn, tqdm and PyYAML.
#   benchmarks/gpu_wheels.sh [folder=.whl] [python version=3.12]
set -euo pipefail
DEST=${1:-.whl}
PYV=${2:-3.12}
mkdir -p "$DEST"
PACKAGES=(
  # data and params
  datasets dill multiprocess pydantic pydantic-core annotated-types typing-inspection
  # papermill and the notebook kernel
  papermill nbclient nbformat ansicolors tenacity entrypoints fastjsonschema jsonschema
  jsonschema-specifications referencing rpds-py jupyter-core jupyter-client platformdirs traitlets
  ipykernel comm debugpy ipython ipython-pygments-lexers jedi parso pexpect ptyprocess prompt-toolkit
  wcwidth stack-data asttokens executing pure-eval decorator matplotlib-inline nest-asyncio pyzmq tornado
  # the report
  nbconvert mistune bleach tinycss2 webencodings pandocfilters jupyterlab-pygments defusedxml
  beautifulsoup4 soupsieve
)
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PYV" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$DEST" "${PACKAGES[@]}"
du -sh "$DEST"
