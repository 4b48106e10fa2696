# retry CMD...: runs CMD up to 3 times, 5 s then 20 s apart, for the downloads that have no
# retries of their own (go mod download, go install, npm install), so that one dropped
# connection to a registry does not fail CI. Sourced by the install scripts.
# shellcheck shell=bash
retry() {
    local attempt=1 pause
    while true; do
        if "$@"; then
            return 0
        fi
        if [ "$attempt" -ge 3 ]; then
            echo "retry: '$*' failed $attempt times" >&2
            return 1
        fi
        pause=$((attempt == 1 ? 5 : 20))
        echo "retry: '$*' failed (attempt $attempt); again in ${pause}s" >&2
        sleep "$pause"
        attempt=$((attempt + 1))
    done
}
