#!/usr/bin/env bash
# Builds the Debian bookworm root filesystem every local image starts from, without any container
# registry: debootstrap from the Debian mirror, then a tarball that `docker import` turns into an image.
# Usage: build-rootfs.sh OUTPUT_TARBALL [MIRROR]
set -euo pipefail

output=${1:?usage: build-rootfs.sh OUTPUT_TARBALL [MIRROR]}
mirror=${2:-http://deb.debian.org/debian}
suite=bookworm
# python3-venv brings the pip and setuptools wheels, so images can install our wheels offline.
packages=python3,python3-venv,ca-certificates,tini

workdir=$(mktemp -d /var/tmp/photomatrix-rootfs.XXXXXX)
trap 'rm -rf "${workdir}"' EXIT

debootstrap --variant=minbase --include="${packages}" "${suite}" "${workdir}/rootfs" "${mirror}"

# Keep the image small and reproducible: no apt lists, caches, logs or machine id.
chroot "${workdir}/rootfs" apt-get clean
rm -rf "${workdir}/rootfs"/var/lib/apt/lists/* "${workdir}/rootfs"/var/cache/apt/*.bin \
  "${workdir}/rootfs"/var/log/*.log "${workdir}/rootfs"/tmp/* "${workdir}/rootfs"/usr/share/doc/* \
  "${workdir}/rootfs"/usr/share/man/* "${workdir}/rootfs"/usr/share/locale/*
: >"${workdir}/rootfs/etc/machine-id"
# Containers reach the mirror over plain HTTP; keep the same mirror as the build used.
printf 'deb %s %s main\ndeb %s %s-updates main\n' "${mirror}" "${suite}" "${mirror}" "${suite}" \
  >"${workdir}/rootfs/etc/apt/sources.list"

mkdir -p "$(dirname "${output}")"
tar --numeric-owner --sort=name --mtime='2000-01-01' -C "${workdir}/rootfs" -cf "${output}.partial" .
mv "${output}.partial" "${output}"
