#!/usr/bin/env bash
# Shared by the scripts that take no arguments but -h/--help: sourced as
#   . scripts/options.sh; only_help_option "$@"
# It prints the calling script's opening comment block as its usage, and refuses anything else.
# Run directly, it only answers --help.

# The opening comment block of the script that sourced this file, without the leading `# `.
script_usage() { sed -n '2,/^$\|^[^#]/{/^#/s/^# \{0,1\}//p;}' "$0"; }

# -h/--help prints the usage and exits 0; any other argument is an error (exit 2).
only_help_option() {
    local arg
    for arg in "$@"; do
        case "$arg" in
            -h | --help) script_usage; exit 0 ;;
            *) printf '%s: unknown option: %s\n\n' "$(basename "$0")" "$arg" >&2; script_usage >&2; exit 2 ;;
        esac
    done
}

# Run directly, it answers --help like every script.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    only_help_option "$@"
fi
