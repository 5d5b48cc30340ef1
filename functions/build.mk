# Shared by every functions/<folder>/Makefile: `sam build` (template.yaml, BuildMethod: makefile)
# copies the folder to a scratch directory and runs `make --makefile <folder>/Makefile build-<LogicalId>`
# there with ARTIFACTS_DIR set to the function's root (/var/task). The folder's Makefile includes this
# file by its own path (MAKEFILE_LIST), so the include is found from the scratch directory too.
#
# Why not BuildMethod python3.13: it ships the handlers' sources without bytecode, and /var/task is
# read-only, so every cold start compiled them again (as layers/domain/Makefile says of the layer).
# Compiled here as unchecked-hash .pyc (valid whatever the file times in the zip), with the runtime's
# Python; the .py stay beside them for tracebacks.

RUNTIME_PYTHON_VERSION := 3.13
PYTHON ?= python$(RUNTIME_PYTHON_VERSION)
PLATFORM ?= manylinux2014_aarch64

.PHONY: sources dependencies

# The handler modules with their bytecode (no Makefile, requirements or stale __pycache__).
sources:
	@test -n "$(ARTIFACTS_DIR)" || { echo "ARTIFACTS_DIR is not set" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; v = "%d.%d" % sys.version_info[:2]; sys.exit(0 if v == "$(RUNTIME_PYTHON_VERSION)" or "$(ALLOW_OTHER_PYTHON)" else "bytecode must be compiled by Python $(RUNTIME_PYTHON_VERSION), not " + v)'
	mkdir -p "$(ARTIFACTS_DIR)"
	cp *.py "$(ARTIFACTS_DIR)/"
	rm -rf "$(ARTIFACTS_DIR)/__pycache__"
	$(PYTHON) -m compileall -q -f --invalidation-mode unchecked-hash "$(ARTIFACTS_DIR)"

# A folder with its own requirements.txt: pinned wheels for the Lambda platform (arm64, CPython 3.13),
# whatever machine builds; compiled again by `sources` (pip writes timestamp-checked bytecode, which a
# zip's file times can invalidate).
dependencies:
	@test -n "$(ARTIFACTS_DIR)" || { echo "ARTIFACTS_DIR is not set" >&2; exit 1; }
	$(PYTHON) -m pip install --quiet --upgrade --requirement requirements.txt --target "$(ARTIFACTS_DIR)" \
		--platform $(PLATFORM) --implementation cp --python-version $(RUNTIME_PYTHON_VERSION) --only-binary=:all:
