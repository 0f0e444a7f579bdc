//! The test bed itself: `scripts/docker-host.sh` builds a host whose interfaces show the copies the ground truth measured.
