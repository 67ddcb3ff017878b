# shellcheck shell=bash
# The assignment's settings, read by setup.sh and run_autograder. Edit the first two; the environment
# overrides each one (for trying the autograder on your own machine, docs/courses.md).

# EDIT: the lab this assignment grades (`lab list` shows the slugs).
LAB_SLUG="${LAB_SLUG:-race-conditions}"

# EDIT: the kit setup.sh installs, pinned so every submission is graded by the same checks: a version on
# PyPI or the URL of a wheel your course hosts. A nexus_labs-*.whl put beside these files wins over it.
LAB_KIT="${LAB_KIT:-nexus-labs==0.1.0}"

# Seconds one submission may take to grade before it is stopped and reported as such. A lab with a load
# check measures the starter and the reference once per machine (about two minutes); keep this below the
# timeout set in Gradescope's autograder settings.
GRADING_SECONDS="${GRADING_SECONDS:-900}"

# Where setup.sh installs the kit and keeps its caches (made once, in the image every submission starts from).
NEXUS_LABS_HOME="${NEXUS_LABS_HOME:-/opt/nexus-labs}"
LAB="${LAB:-$NEXUS_LABS_HOME/venv/bin/lab}"
export LAB_CACHE_DIR="${LAB_CACHE_DIR:-$NEXUS_LABS_HOME/cache}"
export LAB_STATE_DIR="${LAB_STATE_DIR:-$NEXUS_LABS_HOME/state}"
