#!/bin/sh
# Builds a two-layer OCI image layout by hand, with tar, gzip and sha256sum:
# the format that `skopeo copy … oci:DIR`, `docker buildx --output type=oci`
# and `podman save --format oci-archive` produce, small enough to read.
#
#   scripts/build-layered-image.sh OUT_DIR [BASE.tar]
#
# Layer 1 is BASE.tar as it is (default: the busybox image that the steps
# build on first use, /var/lib/docker-from-scratch/images/busybox.tar).
# Layer 2 deletes /etc/os-release (a `.wh.` whiteout), makes /usr/sbin
# opaque (`.wh..wh..opq`: nothing of it below shows through) with one new
# file in it, and adds /app/hello. The config sets Env, WorkingDir (which is
# in no layer: the runtime makes it), User and Cmd, as a Dockerfile would:
#
#   FROM busybox
#   RUN rm /etc/os-release && rm -r /usr/sbin/* && echo top > /usr/sbin/only-in-top
#   COPY hello /app/hello
#   ENV GREETING="hello from the image"
#   WORKDIR /app/work
#   USER 1000:1000
#   CMD ["sh", "-c", "echo \"default: $GREETING, uid $(id -u), in $(pwd)\""]
#
# OUT_DIR/
#   oci-layout                    {"imageLayoutVersion":"1.0.0"}
#   index.json                    points at the manifest, by digest
#   blobs/sha256/<digest>         the manifest, the config, each layer
#
# Each blob is named by the sha256 of its bytes: a runtime checks every one
# against its name before it uses it. POSIX sh and busybox applets only.
set -eu

out=${1:?usage: $0 OUT_DIR [BASE.tar]}
base=${2:-/var/lib/docker-from-scratch/images/busybox.tar}
[ -f "$base" ] || {
    echo "$0: no $base: run any step once (it builds the busybox image), or give BASE.tar" >&2
    exit 1
}
mkdir -p "$out/blobs/sha256"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# Puts file $1 in the blobs, named by its digest; prints "DIGEST SIZE".
blob() {
    digest=$(sha256sum "$1" | cut -d' ' -f1)
    size=$(wc -c <"$1" | tr -d ' ')
    cp "$1" "$out/blobs/sha256/$digest"
    echo "$digest $size"
}

# Layer 1: the base, uncompressed.
set -- $(blob "$base")
base_digest=$1 base_size=$2

# Layer 2: the changes, as image tools write them: a whiteout is an empty
# file named .wh.NAME, an opaque directory holds an empty .wh..wh..opq.
top=$scratch/top
mkdir -p "$top/etc" "$top/usr/sbin" "$top/app"
: >"$top/etc/.wh.os-release"
: >"$top/usr/sbin/.wh..wh..opq"
echo top >"$top/usr/sbin/only-in-top"
echo "hello from the top layer" >"$top/app/hello"
# A fixed time, so that the same tar gives the same layer digest each time.
find "$top" -exec touch -t 202311142213.20 {} \;
(cd "$top" && tar -cf "$scratch/top.tar" etc usr app)
diff_id=$(sha256sum "$scratch/top.tar" | cut -d' ' -f1)
# -n: no name or time in the gzip header (a busybox gzip may not know it).
gzip -n -c "$scratch/top.tar" >"$scratch/top.tar.gz" 2>/dev/null || gzip -c "$scratch/top.tar" >"$scratch/top.tar.gz"
set -- $(blob "$scratch/top.tar.gz")
top_digest=$1 top_size=$2

# The config: what `docker run` takes as defaults, and the layers'
# uncompressed digests (diff_ids).
cat >"$scratch/config.json" <<EOF
{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","GREETING=hello from the image"],"Cmd":["sh","-c","echo \"default: \$GREETING, uid \$(id -u), in \$(pwd)\""],"WorkingDir":"/app/work","User":"1000:1000"},"rootfs":{"type":"layers","diff_ids":["sha256:$base_digest","sha256:$diff_id"]}}
EOF
set -- $(blob "$scratch/config.json")
config_digest=$1 config_size=$2

# The manifest: the config and the layers, bottom first.
cat >"$scratch/manifest.json" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$config_digest","size":$config_size},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:$base_digest","size":$base_size},{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:$top_digest","size":$top_size}]}
EOF
set -- $(blob "$scratch/manifest.json")
manifest_digest=$1 manifest_size=$2

cat >"$out/index.json" <<EOF
{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$manifest_digest","size":$manifest_size,"annotations":{"org.opencontainers.image.ref.name":"layered"}}]}
EOF
echo '{"imageLayoutVersion":"1.0.0"}' >"$out/oci-layout"
echo "built $out: layers sha256:$(echo "$base_digest" | cut -c1-12) (base), sha256:$(echo "$top_digest" | cut -c1-12) (top)"
