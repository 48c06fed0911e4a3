#!/bin/sh
# Builds the libFuzzer targets with clang (AddressSanitizer and
# UndefinedBehaviorSanitizer on, UB is fatal). Binaries go to $OUT, by
# default build-fuzz/ at the top of the tree (ignored by git).
#
#   test/fuzz/build.sh            build all targets
#   CC=clang-15 test/fuzz/build.sh
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
out=${OUT:-$top/build-fuzz}
cc=${CC:-clang}
ssl_cflags=$(pkg-config --cflags openssl 2>/dev/null || true)
ssl_libs=$(pkg-config --libs openssl 2>/dev/null || echo "-lssl -lcrypto")

# Same language and feature macros as the configure build.
cflags="-std=c11 -g -O1 -fno-omit-frame-pointer -D_GNU_SOURCE=1 -DCASSERT=1 -I$top/include
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
	-Wall -Wextra -Wno-unused-parameter ${CFLAGS:-}"

mkdir -p "$out"
core="$top/src/util.c $top/src/log.c"

build() {
	name=$1
	shift
	echo "  CC $out/$name"
	# shellcheck disable=SC2086
	$cc $cflags -o "$out/$name" "$top/test/fuzz/$name.c" "$@"
}

build fuzz_proto $core "$top/src/pktbuf.c" "$top/src/proto.c"
build fuzz_ini $core "$top/src/ini.c" "$top/src/config.c"
build fuzz_hba $core "$top/src/hba.c"
build fuzz_sqlinfo $core "$top/src/sqlinfo.c" -lpg_query -lpthread
# shellcheck disable=SC2086
build fuzz_scram $core "$top/src/base64.c" "$top/src/md5.c" "$top/src/scram.c" $ssl_cflags $ssl_libs
# shellcheck disable=SC2086
build fuzz_mask $core "$top/src/pktbuf.c" "$top/src/proto.c" "$top/src/pgtype.c" \
	"$top/src/mask.c" "$top/src/rowmask.c" $ssl_cflags $ssl_libs -ljansson
