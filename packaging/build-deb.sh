#!/usr/bin/env bash
# Builds postflight's Debian package from a built binary, with dpkg-deb:
#   cargo build --release --locked && packaging/build-deb.sh
#   packaging/build-deb.sh [BINARY [OUT_DIR]]   (defaults: target/release/postflight, target/debian)
# Prints the path of the .deb it wrote. Needs dpkg-dev (dpkg-shlibdeps) and binutils (strip).
# The package metadata is here; the version is Cargo.toml's.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
binary=${1:-$root/target/release/postflight}
out=${2:-$root/target/debian}

package=postflight
version=$(sed -n '/^\[package\]/,/^\[/s/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml")
arch=$(dpkg --print-architecture)
maintainer="postflight maintainers <maintainers@users.noreply.b-seed-c24c97ee.example>"
# Without a CA store postflight cannot verify HTTPS probes, scrapes or receivers.
recommends="ca-certificates"
description="monitoring and alerting daemon that watches services after deployments
 postflight probes health endpoints (HTTP, HTTPS, TCP), scrapes Prometheus metrics,
 evaluates PromQL alert rules, judges each deployment against a baseline it takes
 itself, keeps its history in an embedded store, and pages people through Slack,
 email, webhooks and PagerDuty with Alertmanager's grouping, silences and inhibition.
 .
 The package runs it as a hardened systemd service (a dynamic user, its store in
 /var/lib/postflight), configured in /etc/postflight/postflight.toml with secrets
 in /etc/postflight/env."

[ -n "$version" ] || { echo "build-deb: no version in $root/Cargo.toml" >&2; exit 1; }
[ -x "$binary" ] || { echo "build-deb: no binary at $binary (cargo build --release first)" >&2; exit 1; }

umask 022
# debhelper's layout, which dpkg-shlibdeps expects: the tree in debian/<package>.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tree=$work/debian/$package
mkdir -p "$tree"

# The binary, stripped as dh_strip does.
install -D -m 0755 "$binary" "$tree/usr/bin/postflight"
strip --remove-section=.comment --remove-section=.note --strip-unneeded "$tree/usr/bin/postflight"

# The unit runs the binary from /usr/local/bin when installed by hand; the package's is in /usr/bin.
install -d -m 0755 "$tree/lib/systemd/system"
sed 's|/usr/local/bin/postflight|/usr/bin/postflight|g' "$root/systemd/postflight.service" \
    >"$tree/lib/systemd/system/postflight.service"
chmod 0644 "$tree/lib/systemd/system/postflight.service"
if grep -q /usr/local "$tree/lib/systemd/system/postflight.service"; then
    echo "build-deb: the unit still points into /usr/local" >&2
    exit 1
fi

# The conffiles. The env file holds secrets: root's only (systemd reads it as root).
install -D -m 0644 "$root/config/systemd.toml" "$tree/etc/postflight/postflight.toml"
install -D -m 0600 "$root/packaging/env" "$tree/etc/postflight/env"
# A package whose own config does not check is not built.
"$tree/usr/bin/postflight" check -c "$tree/etc/postflight/postflight.toml" >/dev/null

# Man pages and completions, generated from the CLI definition (src/cli.rs).
gen=$tree/gen
mkdir "$gen"
"$tree/usr/bin/postflight" generate man --out "$gen" >/dev/null
gzip -9n "$gen"/*.1
install -d -m 0755 "$tree/usr/share/man/man1"
install -m 0644 "$gen"/*.1.gz "$tree/usr/share/man/man1/"
for shell in bash zsh fish; do
    "$tree/usr/bin/postflight" generate completions "$shell" --out "$gen" >/dev/null
done
install -D -m 0644 "$gen/postflight.bash" "$tree/usr/share/bash-completion/completions/postflight"
install -D -m 0644 "$gen/_postflight" "$tree/usr/share/zsh/vendor-completions/_postflight"
install -D -m 0644 "$gen/postflight.fish" "$tree/usr/share/fish/vendor_completions.d/postflight.fish"
rm -r "$gen"

# Docs: README.md stays uncompressed, as the unit's Documentation= links to it.
doc=$tree/usr/share/doc/$package
install -D -m 0644 "$root/README.md" "$doc/README.md"
if [ -d "$root/docs" ]; then
    install -d -m 0755 "$doc/docs"
    install -m 0644 "$root"/docs/*.md "$doc/docs/"
fi
install -d -m 0755 "$doc/examples"
install -m 0644 "$root"/config/examples/*.toml "$doc/examples/"
cat >"$doc/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: postflight

Files: *
Copyright: postflight maintainers
License: Apache-2.0
 On Debian systems, the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
EOF
chmod 0644 "$doc/copyright"

# Control files.
install -d -m 0755 "$tree/DEBIAN"
install -m 0755 "$root"/packaging/debian/{postinst,prerm,postrm} "$tree/DEBIAN/"
printf '%s\n' /etc/postflight/postflight.toml /etc/postflight/env >"$tree/DEBIAN/conffiles"
# md5sums for `dpkg --verify`, without the conffiles (dpkg tracks those itself).
(cd "$tree" && find usr lib -type f -print0 | sort -z | xargs -0 md5sum) >"$tree/DEBIAN/md5sums"
# dpkg-shlibdeps reads the package list from debian/control; a minimal one is enough.
printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$package" "$package" >"$work/debian/control"
depends=$(cd "$work" && dpkg-shlibdeps -O -e"debian/$package/usr/bin/postflight" \
    | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "build-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
cat >"$tree/DEBIAN/control" <<EOF
Package: $package
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $(du -sk --exclude=DEBIAN "$tree" | cut -f1)
Depends: $depends
Recommends: $recommends
Section: admin
Priority: optional
Description: $description
EOF
chmod 0644 "$tree/DEBIAN/control" "$tree/DEBIAN/conffiles" "$tree/DEBIAN/md5sums"

mkdir -p "$out"
deb=$out/${package}_${version}_${arch}.deb
dpkg-deb --build --root-owner-group "$tree" "$deb" >/dev/null
echo "$deb"
