#!/bin/sh
# Turn a `debootstrap --variant=minbase` tree into a container base: apt sources, no services started by
# package scripts, no docs or man pages, no recommends, empty caches. Runs on the host, before `docker import`.
#   prepare-rootfs.sh ROOTFS SOURCES [CA_BUNDLE]
#     SOURCES    a deb822 sources file for the image's apt (the host's mirror)
#     CA_BUNDLE  the host's CA bundle, for apt over https (and pip in images built on this one)
set -eu
root=$1 sources=$2 ca=${3:-}

rm -f "$root/etc/apt/sources.list"
cp "$sources" "$root/etc/apt/sources.list.d/debian.sources"

printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"

cat >"$root/etc/dpkg/dpkg.cfg.d/nexus-labs-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CFG

cat >"$root/etc/apt/apt.conf.d/90nexus-labs" <<'CFG'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
Acquire::GzipIndexes "true";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
CFG

if [ -n "$ca" ]; then
  mkdir -p "$root/usr/local/share/nexus-labs"
  cp "$ca" "$root/usr/local/share/nexus-labs/ca-bundle.crt"
  echo 'Acquire::https::CAInfo "/usr/local/share/nexus-labs/ca-bundle.crt";' >>"$root/etc/apt/apt.conf.d/90nexus-labs"
fi

rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
  "$root"/var/log/*.log "$root"/var/log/apt/* \
  "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/groff/* "$root"/usr/share/lintian/*
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} + 2>/dev/null || true
find "$root/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete 2>/dev/null || true
