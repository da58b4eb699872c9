# The agent guest: guests/testguest plus Debian's python3.11 and the real
# Shaken Fist in-guest agent (shakenfist-agent 0.3.18 from PyPI, the release
# that speaks the v1 protocol over the sf-agent virtio-serial port), started
# by busybox init once /etc/rc.boot is done.
#
# Sourced by guests/testguest/build.sh (bash, `set -euo pipefail`), which
# defines $src, $work and log; see its header for what a variant may set.
# Needs on the builder, besides the test guest's tools: a Python with pip
# ($SFMESH_GUEST_PYTHON, default python3) to fetch the wheels, and PyPI.

variant_src=$variant
image_name=agentguest.raw
wanted_modules+=(virtio_console)
builder_python=${SFMESH_GUEST_PYTHON:-python3}

python_packages=(python3.11-minimal libpython3.11-minimal libpython3.11-stdlib)
# Runtime libraries the python packages depend on that only extension
# modules the agent never loads use: dbm, nis, readline, curses, sqlite3,
# crypt, and the data files of mimetypes.
unused_dependencies=(libdb5.3 libnsl2 libtirpc3 libreadline8 libncursesw6 libtinfo6
                     libsqlite3-0 libcrypt1 media-types mime-support)

# Depends of the given packages, one a line ("|" alternatives included,
# virtual packages left out).
package_depends() {
    apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
        --no-replaces --no-enhances "$@" 2>/dev/null |
        sed -n 's/^ *|\{0,1\}Depends: *\([^ <>]*\)$/\1/p' | sort -u
}

# The python packages and, closed over Depends, the shared libraries they
# need (packages named lib* or zlib*), less the unused ones.
resolve_python_packages() {
    local wanted=("${python_packages[@]}") next name
    while :; do
        next=()
        while read -r name; do
            case " ${wanted[*]} ${unused_dependencies[*]} " in *" $name "*) continue ;; esac
            case $name in lib* | zlib*) next+=("$name") ;; esac
        done < <(package_depends "${wanted[@]}")
        [ ${#next[@]} -gt 0 ] || break
        wanted+=("${next[@]}")
    done
    printf '%s\n' "${wanted[@]}"
}

mapfile -t extra_packages < <(resolve_python_packages)
[ ${#extra_packages[@]} -gt ${#python_packages[@]} ] ||
    { log "could not resolve python3.11's libraries with apt-cache"; exit 1; }
log "agent guest packages: ${extra_packages[*]}"

site_packages=usr/lib/python3/dist-packages  # Debian's python3.11 looks there

extend_root() {
    local root=$1 package deb wheel
    # 1. python3.11 and its libraries, unpacked over the initramfs tree, less
    #    documentation, translations and gconv (the agent speaks UTF-8 only).
    for package in "${extra_packages[@]}"; do
        deb=$(compgen -G "$work/debs/${package}_*.deb" | head -n 1) ||
            { log "no package file for $package"; exit 1; }
        dpkg-deb -x "$deb" "$root"
    done
    rm -rf "$root"/usr/share/{doc,man,locale,lintian,info} \
        "$root/usr/lib/x86_64-linux-gnu/gconv" "$root/usr/lib/binfmt.d"

    # 2. The agent and its dependencies: wheels pinned with their hashes,
    #    unpacked into site-packages (what pip install does for wheels
    #    without scripts or data, which these are).
    mkdir -p "$work/wheels" "$root/$site_packages"
    "$builder_python" -m pip download --quiet --disable-pip-version-check \
        --require-hashes --no-deps --only-binary=:all: \
        --implementation cp --python-version 3.11 --abi cp311 --abi abi3 --abi none \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux_2_12_x86_64 \
        --platform manylinux2010_x86_64 --platform manylinux_2_5_x86_64 \
        --platform manylinux1_x86_64 --platform any \
        -r "$variant_src/requirements.txt" -d "$work/wheels"
    for wheel in "$work"/wheels/*.whl; do
        "$builder_python" -m zipfile -e "$wheel" "$root/$site_packages"
    done
    log "$(find "$work/wheels" -name '*.whl' | wc -l) wheels in site-packages"

    # 3. Starting it: a respawn action of busybox init (after sysinit's
    #    rc.boot), the command pip would have written, a systemctl that
    #    answers is-system-running, and an os-release for its facts.
    echo "::respawn:/etc/rc.agent" >>"$root/etc/inittab"
    install -m 0755 "$variant_src/rc.agent" "$root/etc/rc.agent"
    install -D -m 0755 "$variant_src/sf-agent" "$root/usr/bin/sf-agent"
    install -m 0755 "$variant_src/systemctl" "$root/usr/bin/systemctl"
    install -m 0644 "$variant_src/os-release" "$root/etc/os-release"

    # 4. Bytecode made now, by the guest's own interpreter run here, so that
    #    the agent starts without compiling under TCG. unchecked-hash: the
    #    sources' timestamps are never compared.
    PYTHONHOME="$root/usr" PYTHONNOUSERSITE=1 "$root/usr/bin/python3.11" -S -m compileall \
        -q -j 0 --invalidation-mode unchecked-hash -s "$root" -p / \
        "$root/usr/lib/python3.11" "$root/$site_packages" >/dev/null ||
        { log "compiling the guest's python failed"; exit 1; }
    log "python: $(du -sh "$root/usr/lib/python3.11" "$root/$site_packages" | cut -f1 | xargs)"
}
