#!/bin/sh
# Render the Alertmanager config template from the environment, then (optionally) exec a command.
#
#   render-alertmanager-config.sh TEMPLATE OUTPUT [-- COMMAND ARGS...]
#
# `${NAME}` is replaced by the variable's value and must be set (non-empty); `${NAME:-default}` falls
# back to the default; comment lines are copied as they are. Alertmanager cannot expand variables itself, hence this step. Values go inside
# YAML double quotes in the template, so they must not contain `"`. POSIX sh + awk (busybox has both).
set -eu

if [ "$#" -lt 2 ]; then
    echo "usage: $0 TEMPLATE OUTPUT [-- COMMAND ARGS...]" >&2
    exit 2
fi
template=$1
output=$2
shift 2

awk '
/^[[:space:]]*#/ { print; next }
{
    line = $0
    out = ""
    while (match(line, /\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}/)) {
        token = substr(line, RSTART + 2, RLENGTH - 3)
        name = token
        fallback = ""
        has_fallback = 0
        cut = index(token, ":-")
        if (cut > 0) {
            name = substr(token, 1, cut - 1)
            fallback = substr(token, cut + 2)
            has_fallback = 1
        }
        if ((name in ENVIRON) && ENVIRON[name] != "") {
            value = ENVIRON[name]
        } else if (has_fallback) {
            value = fallback
        } else {
            printf "render-alertmanager-config: environment variable %s is not set (needed by %s line %d)\n", name, FILENAME, FNR > "/dev/stderr"
            missing = 1
            value = ""
        }
        if (index(value, "\"") > 0) {
            printf "render-alertmanager-config: %s contains a double quote, which the template cannot hold\n", name > "/dev/stderr"
            missing = 1
        }
        out = out substr(line, 1, RSTART - 1) value
        line = substr(line, RSTART + RLENGTH)
    }
    print out line
}
END { if (missing) exit 1 }
' "$template" > "$output.tmp"
mv "$output.tmp" "$output"

if [ "$#" -gt 0 ]; then
    [ "$1" = "--" ] && shift
    exec "$@"
fi
