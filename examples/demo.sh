#!/usr/bin/env bash
# The main job: build the Go web demo image and import it into minibox.
set -euo pipefail
cd "$(dirname "$0")/.."
minibox=${MINIBOX:-target/release/minibox}
tarball=$(target/release/fixture web)

set -x
"$minibox" import "$tarball" web --change 'CMD ["/bin/web","web"]' --change 'EXPOSE 8081'
"$minibox" images
