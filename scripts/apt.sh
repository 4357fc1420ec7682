# Sourced by test.sh and e2e.sh: how they install Debian packages.
#
# apt_install PACKAGE...: installs the packages with apt-get. Another
# package manager run (unattended-upgrades, a parallel CI job) holds the
# dpkg and package-list locks while it works; apt-get waits up to 10
# minutes for them (DPkg::Lock::Timeout, which apt applies to both) instead
# of failing at once with "Could not get lock".
apt_lock_timeout=600
apt_install() {
  apt-get -o DPkg::Lock::Timeout="$apt_lock_timeout" update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$apt_lock_timeout" \
      install -y -qq --no-install-recommends "$@" >/dev/null
}
