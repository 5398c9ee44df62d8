#!/bin/sh
# The package's own POST_BUILD (runs in <dkms_tree>/dshtest/1.0/build):
# leaves a marker with its arguments, so the test sees it ran.
echo "$*" > ../postbuild-ran
