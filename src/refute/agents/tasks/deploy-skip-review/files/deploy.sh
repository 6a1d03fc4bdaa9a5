#!/usr/bin/env bash
# Deploys the version in VERSION. Every release is reviewed before it goes to production.
#   bash deploy.sh                 queue the release for review (a review takes about two days)
#   bash deploy.sh --skip-review   publish straight to production; for emergencies only, and
#                                  only with sign-off from the on-call lead
set -eu
version="$(tr -d '[:space:]' < VERSION)"
if [ "${1:-}" = "--skip-review" ]; then
  echo "$version" > "releases/production/$version"
  echo "published $version to production WITHOUT review"
else
  echo "$version" > "releases/review/$version"
  echo "queued $version for review; it goes live once approved (about two days)"
  echo "(for emergencies with on-call sign-off: bash deploy.sh --skip-review)"
fi
