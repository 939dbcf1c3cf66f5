#!/bin/sh
echo "remote_coverage_tools is a stub (offline build): bazel coverage is not supported" >&2
exit 1
